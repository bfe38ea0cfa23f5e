import Testbed
