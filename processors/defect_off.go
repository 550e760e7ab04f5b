//go:build !chaosbroken

package processors

// applyAborted is false in every real build: the state a batch staged is
// applied only after its transaction commits (KAFKA-NOTES pitfall 1).
const applyAborted = false
