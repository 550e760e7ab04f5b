// Package idp holds the workers of the document-processing example, the
// pipeline Stepwise was designed for: nested fan-out over documents and
// their pages, with per-page steps that would be the slow, heavily
// replicated services of a real deployment.
//
// # Data flow
//
// The workflow idp (workflows.yaml, embedded as WorkflowsYAML) uses eight
// queues, one handler each:
//
//	request {} (DefaultBundle) or {"bundle": {"documents": [{"name", "pages": ["text", ...]}]}}
//	  split      → {"documents": [{"name", "pages": [...]}, ...]}
//	  documents: one process-document child per document, input {"document": {...}}
//	    render   → {"name", "pages": [{"number", "image", "checksum"}, ...]}
//	    pages: one process-page child per page, input {"name", "page": {...}}
//	      ocr    → {"name", "page": {"number", "text", "confidence"}}
//	      layout → {"name", "page": {..., "blocks", "lines", "words"}}
//	    join: {"name", "pages": [laid-out pages, in order]}
//	    classify → {"name", "class", "confidence", "pages"}
//	    review   (a wait step, only when confidence < 0.7) ← signal "review" {"label": "..."}, or {"reviewed": false} after 72h
//	    extract  ← {"name", "pages", "class": the review's label, else classify's, "reviewed"}
//	             → {"document": {"name", "class", "fields", "pages", "words", "confidence", "reviewed"?}}
//	  join: {"documents": [extracted documents, in order]}
//	  assemble   → {"documents": [...], "summary": {"documents", "pages", "classes"}}
//	  notify     (onFailure: before a request fails) ← {"failure": {"step", "attempt", "error"}, "input", "outputs"}
//	             → Notification, and a log line
//
// The pages fan-out tolerates up to 10% failed children: the join then
// lists them under "pagesFailed" and the document goes on with the pages
// read.
//
// # The computations
//
// They are small and deterministic stand-ins for real services: render
// encodes a page's text as an "image" (base64) with a checksum; OCR decodes
// it, checks the checksum and derives a confidence from it; layout counts
// paragraphs (blocks), lines and words; classify scores keywords (invoice,
// contract, letter, else other), its confidence the winning class's share
// of the keywords found (1 when none is); extract reads a few fields per class with
// regular expressions. Each handler sleeps for a simulated latency (OCR
// four times as long) so that runs show the fan-out working in parallel:
// WithLatency, or STEPWISE_IDP_LATENCY, default DefaultLatency.
//
// Inputs that can never succeed (a document without pages, a bundle that is
// not an object) fail permanently with a message saying what to send.
package idp
