package schemas

import "encoding/json"

// WorkerVectors is the shape of vectors/worker.json, the conformance
// vectors every worker SDK replays; LoadWorkerVectors reads them.
type WorkerVectors struct {
	Description string            `json:"description"`
	WorkerID    string            `json:"workerId"` // the id to configure the worker with
	Handlers    map[string]string `json:"handlers"`
	Cases       []struct {
		Name string `json:"name"`
		Task struct {
			Topic     string            `json:"topic"`
			Partition int32             `json:"partition"`
			Key       string            `json:"key"`
			Headers   map[string]string `json:"headers"`
			Value     json.RawMessage   `json:"value"`
			Raw       *string           `json:"raw"`
		} `json:"task"`
		Handler struct {
			Kind      string          `json:"kind"`
			Value     json.RawMessage `json:"value"`
			Message   string          `json:"message"`
			Retryable bool            `json:"retryable"`
		} `json:"handler"`
		HandlerCalled *bool `json:"handlerCalled"`
		Expect        *struct {
			Topic     string            `json:"topic"`
			Partition int32             `json:"partition"`
			Key       string            `json:"key"`
			Headers   map[string]string `json:"headers"`
			Value     json.RawMessage   `json:"value"`
			Error     *struct {
				Retryable       bool   `json:"retryable"`
				MessageContains string `json:"messageContains"`
			} `json:"error"`
		} `json:"expect"`
	} `json:"cases"`
}

// LoadWorkerVectors decodes vectors/worker.json.
func LoadWorkerVectors() (*WorkerVectors, error) {
	b, err := FS.ReadFile("vectors/worker.json")
	if err != nil {
		return nil, err
	}
	var vs WorkerVectors
	if err := json.Unmarshal(b, &vs); err != nil {
		return nil, err
	}
	return &vs, nil
}
