import Foundation
import Libvirt

extension Testbed {
    /// Who the libvirt host is, for remembering its accelerator verdict, and
    /// whether it offers KVM: on a remote URI both come from that host
    /// through libvirt, never from this machine's `/dev/kvm`.
    func acceleratorHost() async throws -> (host: AcceleratorHost, kvmOffered: Bool) {
        let connection = self.connection
        let remote = !LibvirtURI.isLocal(uri)
        do {
            return try await Blocking.run {
                let local = AcceleratorHost.local
                let qemu = try connection.hypervisorVersion()
                if remote {
                    return (AcceleratorHost(host: try connection.hostname(), kernel: "remote", qemu: qemu), connection.offersVirtType("kvm"))
                }
                return (AcceleratorHost(host: local.host, kernel: local.kernel, qemu: qemu), access("/dev/kvm", R_OK | W_OK) == 0)
            }
        } catch let error as LibvirtError {
            throw TestbedError.libvirt(error)
        }
    }

    /// Boots the image under KVM (no agent, no shell) and waits for init's
    /// first line or the kernel's `Run /sbin/init`.
    func probeBoot(_ image: NodeOSImage) async -> ProbeOutcome {
        // Not named after KVM: a start failure is judged by whether its words blame KVM.
        var spec = MachineSpec(name: "accel-probe", image: image)
        spec.accelerator = .kvm
        spec.memoryMiB = 256
        spec.network = false
        spec.kernelParameters = ["nodeos.shell=0", "nodeos.agent=0"]
        spec.checks = []
        do {
            // The body catches its own failures: whatever is thrown comes from starting.
            return try await Machine.with(spec, in: self, waitForAgent: false) { machine in
                do {
                    let match = try await machine.console.expect(
                        success: ["Run /sbin/init", "nodeos: phase", "nodeos: boot"], failure: ["Kernel panic"], timeout: AcceleratorProbe.probeDeadline)
                    return .reachedInit("a KVM guest reached init: \(match.line)")
                } catch {
                    return .hung("a KVM guest did not reach init within \(AcceleratorProbe.probeDeadline.formattedSeconds)")
                }
            }
        } catch let error as MachineError {
            return .startFailed(error.message)
        } catch {
            return .startFailed("\(error)")
        }
    }
}
