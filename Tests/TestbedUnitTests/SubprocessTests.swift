import Foundation
import HostProcess
import Testbed
import Testing

/// The one process spawner: output, status, deadlines, process groups, descriptors, signals.
@Suite("Subprocess", .serialized)
struct SubprocessTests {
    /// Whether `pid` is gone (or a zombie nobody reaped yet), waiting up to `seconds`.
    static func gone(_ pid: Int32, within seconds: Double = 2) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return true }
            if stat[stat.index(after: close)...].hasPrefix(" Z") { return true }
            usleep(20_000)
        } while Date() < deadline
        return false
    }

    static func openDescriptors() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).count
    }

    @Test("both outputs are collected, apart, even a megabyte of each at once")
    func outputCollected() throws {
        let small = try Subprocess("sh", ["-c", "printf out; printf err >&2"]).run()
        #expect(small.stdoutText == "out")
        #expect(small.stderrText == "err")
        #expect(small.termination == .exited(0))
        #expect(!small.timedOut)

        let big = try Subprocess("sh", ["-c", "head -c 1048576 /dev/zero & head -c 1048576 /dev/zero >&2; wait"],
                                 timeout: .seconds(30)).run()
        #expect(big.stdout.count == 1_048_576)
        #expect(big.stderr.count == 1_048_576)
        #expect(!big.timedOut)
    }

    @Test("standard error can follow standard output; outputs can go to a file or nowhere")
    func outputDestinations() throws {
        let merged = try Subprocess("sh", ["-c", "echo one; echo two >&2"], standardError: .standardOutput).run()
        #expect(merged.stdoutText == "one\ntwo\n")
        #expect(merged.stderr.isEmpty)

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("subprocess-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        _ = try Subprocess("sh", ["-c", "echo first"], standardOutput: .file(file)).run()
        _ = try Subprocess("sh", ["-c", "echo second >&2"], standardOutput: .discard, standardError: .file(file, append: true)).run()
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "first\nsecond\n")
    }

    @Test("the exit status, and death by a signal")
    func statusAndSignal() throws {
        let seven = try Subprocess("sh", ["-c", "exit 7"]).run()
        #expect(seven.termination == .exited(7))
        #expect(seven.status == 7)

        let killed = try Subprocess("sh", ["-c", "kill -KILL $$"]).run()
        #expect(killed.termination == .signalled(SIGKILL))
        #expect(killed.status == SIGKILL)
    }

    @Test("stdin: empty by default, or given bytes (a megabyte, echoed back while it is written)")
    func input() throws {
        #expect(try Subprocess("cat").run().stdout.isEmpty)
        let bytes = Data((0..<1_048_576).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let echoed = try Subprocess("cat", standardInput: .data(bytes), timeout: .seconds(30)).run()
        #expect(echoed.stdout == bytes)
        // A program that reads nothing: the write fails quietly (EPIPE, no SIGPIPE here).
        let ignoring = try Subprocess("true", standardInput: .data(bytes), timeout: .seconds(30)).run()
        #expect(ignoring.termination == .exited(0))
    }

    @Test("the deadline kills a child that ignores SIGTERM and its grandchild holding the pipes, within grace + 1 s")
    func deadlineKillsGroup() throws {
        let clock = ContinuousClock()
        let started = clock.now
        let timeout = Duration.milliseconds(300)
        let grace = Duration.seconds(1)
        let result = try Subprocess("sh", ["-c", "trap '' TERM; sh -c \"trap '' TERM; sleep 60\" & echo $!; sleep 60"],
                                    timeout: timeout, grace: grace).run()
        let took = clock.now - started
        #expect(result.timedOut)
        #expect(result.termination == .signalled(SIGKILL))
        #expect(took < timeout + grace + .seconds(1), "took \(took)")
        let grandchild = try #require(Int32(result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(Self.gone(grandchild), "the grandchild \(grandchild) outlived the deadline")
    }

    @Test("HostCommand's deadline holds for a TERM-ignoring grandchild too, with the same message")
    func hostCommandDeadline() throws {
        let clock = ContinuousClock()
        let started = clock.now
        let command = HostCommand("sh", ["-c", "trap '' TERM; sleep 60 & sleep 60"], step: "a stubborn family")
        do {
            try command.run(timeout: .milliseconds(300))
            Issue.record("it did not time out")
        } catch let failure as HostCommand.Failure {
            #expect(failure.description == "a stubborn family: `sh -c trap '' TERM; sleep 60 & sleep 60` did not finish in time:\nkilled after 0.3 seconds")
        }
        #expect(clock.now - started < .milliseconds(300) + .seconds(3))

        do {
            try HostCommand("sh", ["-c", "echo oops >&2; exit 3"], step: "failing").run()
            Issue.record("it did not fail")
        } catch let failure as HostCommand.Failure {
            #expect(failure.description == "failing: `sh -c echo oops >&2; exit 3` exited with status 3:\noops")
        }
    }

    @Test("when the child exits, its group goes too: a background grandchild cannot hold the pipes")
    func exitKillsGroup() throws {
        let clock = ContinuousClock()
        let started = clock.now
        let result = try Subprocess("sh", ["-c", "sleep 60 & echo $!"], timeout: .seconds(30)).run()
        #expect(clock.now - started < .seconds(5))
        #expect(!result.timedOut)
        #expect(result.termination == .exited(0))
        let grandchild = try #require(Int32(result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(Self.gone(grandchild))
    }

    @Test("the working directory, and a missing one fails to start")
    func workingDirectory() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("subprocess-cwd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try Subprocess("pwd", ["-P"], currentDirectory: folder.path).run()
        #expect(result.stdoutText == folder.resolvingSymlinksInPath().path + "\n")
        #expect(throws: SubprocessError.self) {
            try Subprocess("pwd", currentDirectory: folder.path + "/missing").run()
        }
        #expect(throws: SubprocessError.self) { try Subprocess("/nonexistent/program").run() }
    }

    @Test("the environment is the one given, whole")
    func environment() throws {
        let result = try Subprocess("sh", ["-c", "echo \"$GREETING|${HOME-unset}\""],
                                    environment: ["GREETING": "hello", "PATH": "/usr/bin:/bin"]).run()
        #expect(result.stdoutText == "hello|unset\n")
        let inherited = try Subprocess("sh", ["-c", "echo \"$PATH\""]).run()
        #expect(inherited.stdoutText == (ProcessInfo.processInfo.environment["PATH"] ?? "") + "\n")
    }

    @Test("no descriptor leaks: 50 runs leave the count alone, and a child gets only 0, 1 and 2")
    func noDescriptorLeak() throws {
        _ = try Subprocess("true").run()  // warm up (dlopen, threads)
        let before = Self.openDescriptors()
        for index in 0..<50 {
            let result = try Subprocess("cat", standardInput: index.isMultiple(of: 2) ? .data(Data("x".utf8)) : .null).run()
            #expect(result.termination == .exited(0))
        }
        _ = try? Subprocess("/nonexistent/program").run()
        _ = try? Subprocess("true", currentDirectory: "/nonexistent").run()
        let after = Self.openDescriptors()
        // Other suites run in parallel and open files too; a leak here would be 100 or more.
        #expect(after - before < 10, "descriptors before: \(before), after: \(after)")

        // A descriptor of ours without O_CLOEXEC still does not reach the child.
        let stray = open("/dev/null", O_RDONLY)
        defer { close(stray) }
        let running = try Subprocess("sleep", ["30"], standardInput: .keptOpen).spawn()
        defer { running.stop() }
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(running.pid)/fd").sorted()
        #expect(fds == ["0", "1", "2"])
    }

    @Test("a child gets SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGPIPE at their defaults and nothing blocked")
    func signalDefaults() throws {
        // Ignore SIGPIPE and block SIGINT here while spawning: the child must not inherit either.
        var ignore = sigaction()
        ignore.__sigaction_handler.sa_handler = SIG_IGN
        var previous = sigaction()
        sigaction(SIGPIPE, &ignore, &previous)
        defer { sigaction(SIGPIPE, &previous, nil) }
        var block = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGINT)
        var oldMask = sigset_t()
        pthread_sigmask(SIG_BLOCK, &block, &oldMask)
        let result = try Subprocess("grep", ["-E", "^Sig(Ign|Blk):", "/proc/self/status"]).run()
        pthread_sigmask(SIG_SETMASK, &oldMask, nil)

        var masks: [String: UInt64] = [:]
        for line in result.stdoutText.split(separator: "\n") {
            let parts = line.split(separator: ":")
            masks[String(parts[0])] = UInt64(parts[1].trimmingCharacters(in: .whitespaces), radix: 16)
        }
        let ignored = try #require(masks["SigIgn"], "\(result.stdoutText)")
        let blocked = try #require(masks["SigBlk"], "\(result.stdoutText)")
        for signo in Subprocess.defaultedSignals {
            #expect(ignored & (1 << UInt64(signo - 1)) == 0, "the child ignores signal \(signo) (SigIgn \(String(ignored, radix: 16)))")
        }
        #expect(blocked == 0, "SigBlk \(String(blocked, radix: 16))")
    }

    @Test("a child runs in a process group of its own")
    func ownGroup() throws {
        let running = try Subprocess("sleep", ["30"]).spawn()
        defer { running.stop() }
        #expect(getpgid(running.pid) == running.pid)
        #expect(getpgid(running.pid) != getpgrp())
    }

    @Test("the async form, and cancelling it stops the program")
    func asyncRun() async throws {
        let hello = try await Subprocess("sh", ["-c", "echo hi"]).run()
        #expect(hello.stdoutText == "hi\n")

        let clock = ContinuousClock()
        let started = clock.now
        let task = Task { try await Subprocess("sleep", ["60"]).run() }
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        let result = try await task.value
        #expect(result.termination == .signalled(SIGTERM))
        #expect(!result.timedOut)
        #expect(clock.now - started < .seconds(10))
    }

    @Test("a long-running child: pid, output while it runs, terminate, wait")
    func handle() async throws {
        let running = try Subprocess("sh", ["-c", "echo ready; sleep 60"], timeout: .seconds(120)).spawn()
        #expect(running.isRunning)
        #expect(running.termination == nil)
        let ready = await running.waitForOutput(timeout: .seconds(10)) { String(decoding: $0, as: UTF8.self).contains("ready") }
        #expect(ready)
        #expect(running.standardOutputSoFar == Data("ready\n".utf8))
        #expect(await running.wait(timeout: .milliseconds(100)) == nil)
        running.terminate()
        let result = await running.wait()
        #expect(result.termination == .signalled(SIGTERM))
        #expect(!running.isRunning)
        #expect(result.stdoutText == "ready\n")
        #expect(Self.gone(result.pid))
    }

    @Test("stdin kept open: the child waits for input until it is closed")
    func keptOpenInput() async throws {
        let running = try Subprocess("cat", standardInput: .keptOpen, timeout: .seconds(30)).spawn()
        try await Task.sleep(for: .milliseconds(200))
        #expect(running.isRunning)
        running.closeStandardInput()
        running.closeStandardInput()  // a second close does nothing
        let result = await running.wait()
        #expect(result.termination == .exited(0))
        #expect(!result.timedOut)
    }
}
