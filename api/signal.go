package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/stepwise-run/stepwise/client"
	"github.com/stepwise-run/stepwise/processors/machine"
)

// signal sends a signal to a request: POST
// /api/v1/requests/{id}/signals/{name}[?step=PATH] with the signal's data
// (a JSON object; an empty body is {}). 404 for an unknown request, 409
// when the request would not take it (finished, no step waits for that
// name, that step has finished waiting, or the same signal came before:
// machine.CheckSignal), 400 for data that is not a JSON object. A signal
// for a step that does not wait yet is accepted and kept by the request.
func (s *Server) signal(w http.ResponseWriter, r *http.Request) {
	name, step := r.PathValue("name"), r.URL.Query().Get("step")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("signal data is over the %d-byte limit", s.cfg.MaxBody))
			return
		}
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	if strings.TrimSpace(string(body)) == "" {
		body = nil
	} else if err := client.ValidateInput(body); err != nil {
		writeError(w, http.StatusBadRequest, "signal data: "+strings.TrimPrefix(err.Error(), "stepwise: "))
		return
	}
	req := s.requestOr404(w, r)
	if req == nil {
		return
	}
	root := req.Instance("")
	if root == nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("request %q has no state yet; try again", req.ID()))
		return
	}
	wf, _, err := s.defs.Resolve(root.Workflow, root.DefinitionVersion())
	if err != nil {
		writeError(w, http.StatusConflict, "cannot signal: "+strings.TrimPrefix(err.Error(), "stepwise: "))
		return
	}
	if err := machine.CheckSignal(wf, root, req.Instance, name, step); err != nil {
		writeError(w, http.StatusConflict, strings.TrimPrefix(err.Error(), machine.ErrSignalRefused.Error()+": "))
		return
	}
	if err := s.sender.Signal(r.Context(), req.ID(), name, step, body); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the signal could not be written to Kafka: "+err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, Accepted{ID: req.ID(), Workflow: root.Workflow, Status: "signalled", URL: "/api/v1/requests/" + req.ID()})
}
