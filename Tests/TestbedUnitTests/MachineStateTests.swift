import Testing
import TestbedCore

@Suite("Machine lifecycle")
struct MachineStateTests {
    @Test("it only moves forward, and the first reason it stopped is kept")
    func forward() {
        var state = MachineState.running
        #expect(!state.isStopped && state.reason == nil)
        state.stop("the domain stopped (crashed)")
        state.stop("the domain stopped (shutdown)")
        #expect(state == .stopped(reason: "the domain stopped (crashed)"))
        let first = state.beginFinish()
        #expect(first)
        #expect(state == .finished(reason: "the domain stopped (crashed)"))
        let second = state.beginFinish()
        #expect(!second, "a second finish is refused")
        state.stop("late event")
        #expect(state.isFinished && state.reason == "the domain stopped (crashed)")
    }

    @Test("finishing a running machine says it was destroyed")
    func destroyed() {
        var state = MachineState.running
        let claimed = state.beginFinish()
        #expect(claimed)
        #expect(state == .finished(reason: "the machine was destroyed"))
        #expect(state.isStopped)
    }
}
