import Testbed
print("testbed")
