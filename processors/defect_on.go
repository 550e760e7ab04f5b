//go:build chaosbroken

package processors

// applyAborted is true only in builds tagged chaosbroken: the processor
// then keeps the state of a batch whose transaction aborted, as if it had
// applied its state before the commit. The chaos soak (integration/chaos,
// -broken) builds this variant to show that it catches the defect.
const applyAborted = true
