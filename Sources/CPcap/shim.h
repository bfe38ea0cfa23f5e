#ifndef NODEOS_CPCAP_SHIM_H
#define NODEOS_CPCAP_SHIM_H
#include <pcap/pcap.h>
#endif
