"""coursekit: the helper package of the Packet Walk course (``import coursekit as ck``)."""
from .errors import CourseError
from .scenario import load_scenario, default_scenario
from .datapath import walk
from .capture import capture, write_pcap, read_pcap

__version__ = "0.1.0"
