package definitions

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RecordVersion is the encoding version written in every definition
// record's "v" field. Decode accepts every version up to this one.
const RecordVersion = 1

// Record is one value of the definitions topic: one version of one
// workflow (definition.schema.json).
type Record struct {
	V        int    `json:"v"`
	Workflow string `json:"workflow"` // the name clients start it by
	Version  int    `json:"version"`  // 1, 2, ...: one above the previous version of Workflow
	// Hash is "sha256:" and the hex digest of Source; equal hashes mean
	// equal definitions, so an apply of the same content is a no-op.
	Hash string `json:"hash,omitempty"`
	// Source is a definition file holding this workflow alone, in a
	// canonical form (keys sorted, comments and anchors gone), which
	// topology.Parse reads.
	Source  string    `json:"source,omitempty"`
	File    string    `json:"file,omitempty"` // the file it was applied from, for people
	Deleted bool      `json:"deleted,omitempty"`
	Applied time.Time `json:"applied"`
}

// Errors of decoding and keys.
var (
	ErrRecordVersion = errors.New("stepwise: definition record of a newer version; upgrade this program")
	ErrBadKey        = errors.New("stepwise: malformed definitions key")
)

// KeyOf is the record key of version of workflow: "<workflow>/<version>".
// Workflow names may hold "/" (namespaced workflows): the version is what
// follows the last one.
func KeyOf(workflow string, version int) string {
	return workflow + "/" + strconv.Itoa(version)
}

// ParseKey splits a key made by KeyOf.
func ParseKey(key string) (workflow string, version int, err error) {
	i := strings.LastIndexByte(key, '/')
	if i <= 0 {
		return "", 0, fmt.Errorf("%w %q", ErrBadKey, key)
	}
	v, err := strconv.Atoi(key[i+1:])
	if err != nil || v < 1 {
		return "", 0, fmt.Errorf("%w %q: no version after the last /", ErrBadKey, key)
	}
	return key[:i], v, nil
}

// HashOf returns the content hash of a canonical source.
func HashOf(source []byte) string {
	sum := sha256.Sum256(source)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Encode returns the record's wire form.
func Encode(r *Record) []byte {
	r.V = RecordVersion
	b, err := json.Marshal(r)
	if err != nil {
		// Only strings, numbers and a time: cannot fail.
		panic(fmt.Sprintf("stepwise: encode definition record: %v", err))
	}
	return b
}

// Decode parses a record written by Encode and checks that its key names
// the same workflow and version.
func Decode(key string, value []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(value, &r); err != nil {
		return nil, fmt.Errorf("stepwise: decode definition record %q: %w", key, err)
	}
	if r.V > RecordVersion {
		return nil, fmt.Errorf("%w (record v%d, known v%d)", ErrRecordVersion, r.V, RecordVersion)
	}
	name, version, err := ParseKey(key)
	if err != nil {
		return nil, err
	}
	if name != r.Workflow || version != r.Version {
		return nil, fmt.Errorf("stepwise: definition record %q names %s version %d", key, r.Workflow, r.Version)
	}
	if !r.Deleted && r.Source == "" {
		return nil, fmt.Errorf("stepwise: definition record %q has no source", key)
	}
	return &r, nil
}
