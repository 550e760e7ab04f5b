package schemas

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// EncodeRecord returns the state record's wire form: the JSON that
// encoding/json would write for the tagged fields, "v" first. It is written
// by hand because
// every processed event writes at least one record and encoding/json
// re-validates each raw payload on the way out; payloads here were
// validated when they arrived, so they are copied as they are.
func EncodeRecord(r *Record) []byte {
	r.V = RecordVersion
	b := make([]byte, 0, 256+len(r.Input)+len(r.Output))
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(r.V), 10)
	b = appendStringFieldOmit(b, "kind", r.Kind)
	b = appendStringField(b, "request", r.Request)
	b = appendStringField(b, "workflow", r.Workflow)
	if r.Version != 0 {
		b = append(b, `,"version":`...)
		b = strconv.AppendInt(b, int64(r.Version), 10)
	}
	b = appendStringFieldOmit(b, "path", r.Path)
	b = appendStringFieldOmit(b, "task", r.Task)
	b = appendStringFieldOmit(b, "id", r.ID)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = appendStringField(b, "status", string(r.Status))
	b = appendRawFieldOmit(b, "input", r.Input)
	if len(r.Steps) > 0 {
		b = append(b, `,"steps":{`...)
		var buf [16]string // graphs are small: sort the names without allocating
		names := buf[:0]
		for name := range r.Steps {
			names = append(names, name)
		}
		slices.Sort(names)
		for i, name := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, name)
			b = append(b, ':')
			b = appendStep(b, r.Steps[name])
		}
		b = append(b, '}')
	}
	b = appendRawFieldOmit(b, "output", r.Output)
	if f := r.Error; f != nil {
		b = append(b, `,"error":{`...)
		if f.Step != "" {
			b = appendString(b, "step")
			b = append(b, ':')
			b = appendString(b, f.Step)
			b = append(b, ',')
		}
		if f.Attempt != 0 {
			b = append(b, `"attempt":`...)
			b = strconv.AppendInt(b, int64(f.Attempt), 10)
			b = append(b, ',')
		}
		b = append(b, `"message":`...)
		b = appendString(b, f.Message)
		b = append(b, '}')
	}
	b = appendTimeField(b, "created", r.Created)
	b = appendTimeField(b, "updated", r.Updated)
	b = appendTimeFieldOmit(b, "expireAt", r.ExpireAt)
	if r.Retries != 0 {
		b = append(b, `,"retries":`...)
		b = strconv.AppendInt(b, int64(r.Retries), 10)
	}
	if r.Children != 0 {
		b = append(b, `,"children":`...)
		b = strconv.AppendInt(b, int64(r.Children), 10)
	}
	if r.Done != 0 {
		b = append(b, `,"done":`...)
		b = strconv.AppendInt(b, int64(r.Done), 10)
	}
	if r.Pending != 0 {
		b = append(b, `,"pending":`...)
		b = strconv.AppendInt(b, int64(r.Pending), 10)
	}
	b = appendSignals(b, r.Signals)
	b = appendTimeFieldOmit(b, "deadline", r.Deadline)
	if r.Failed != 0 {
		b = append(b, `,"failed":`...)
		b = strconv.AppendInt(b, int64(r.Failed), 10)
	}
	b = appendStringFieldOmit(b, "trace", r.Trace)
	b = appendStringFieldOmit(b, "traceParent", r.TraceParent)
	return append(b, '}')
}

func appendStep(b []byte, s *StepState) []byte {
	b = append(b, `{"status":`...)
	b = appendString(b, string(s.Status))
	if s.Attempt != 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(s.Attempt), 10)
	}
	if s.First != 0 {
		b = append(b, `,"first":`...)
		b = strconv.AppendInt(b, int64(s.First), 10)
	}
	b = appendRawFieldOmit(b, "output", s.Output)
	if s.Children != 0 {
		b = append(b, `,"children":`...)
		b = strconv.AppendInt(b, int64(s.Children), 10)
	}
	if s.Done != 0 {
		b = append(b, `,"done":`...)
		b = strconv.AppendInt(b, int64(s.Done), 10)
	}
	b = appendStringFieldOmit(b, "error", s.Error)
	b = appendStringFieldOmit(b, "worker", s.Worker)
	if s.Continued {
		b = append(b, `,"continued":true`...)
	}
	b = appendTimeFieldOmit(b, "started", s.Started)
	b = appendTimeFieldOmit(b, "ended", s.Ended)
	b = appendTimeFieldOmit(b, "retryAt", s.RetryAt)
	b = appendTimeFieldOmit(b, "deadline", s.Deadline)
	if len(s.Earlier) > 0 {
		b = append(b, `,"earlier":[`...)
		for i := range s.Earlier {
			a := &s.Earlier[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"attempt":`...)
			b = strconv.AppendInt(b, int64(a.Attempt), 10)
			b = appendStringField(b, "outcome", a.Outcome)
			b = appendStringFieldOmit(b, "error", a.Error)
			b = appendStringFieldOmit(b, "worker", a.Worker)
			b = appendTimeFieldOmit(b, "started", a.Started)
			b = appendTimeFieldOmit(b, "ended", a.Ended)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if s.EarlierDropped != 0 {
		b = append(b, `,"earlierDropped":`...)
		b = strconv.AppendInt(b, int64(s.EarlierDropped), 10)
	}
	b = appendTimeFieldOmit(b, "heartbeatDue", s.HeartbeatDue)
	b = appendRawFieldOmit(b, "heartbeat", s.Heartbeat)
	return append(b, '}')
}

func appendStringField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

func appendStringFieldOmit(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendStringField(b, name, v)
}

func appendRawFieldOmit(b []byte, name string, v json.RawMessage) []byte {
	if len(v) == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return append(b, v...)
}

func appendTimeField(b []byte, name string, t time.Time) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':', '"')
	b = appendTime(b, t)
	return append(b, '"')
}

// appendTime appends t as time.RFC3339Nano does. The machine's times are
// UTC, for which it writes the digits itself: formatting times is a good
// part of encoding a record, and AppendFormat is general.
func appendTime(b []byte, t time.Time) []byte {
	if t.Location() != time.UTC || t.Year() < 0 || t.Year() > 9999 {
		return t.AppendFormat(b, time.RFC3339Nano)
	}
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	if ns := t.Nanosecond(); ns != 0 {
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		b = append(b, '.')
		b = appendDigits(b, ns, digits)
	}
	return append(b, 'Z')
}

// appendDigits appends v zero-padded to width digits.
func appendDigits(b []byte, v, width int) []byte {
	var buf [9]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, buf[:width]...)
}

func appendTimeFieldOmit(b []byte, name string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	return appendTimeField(b, name, t)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping as encoding/json does
// (quotes, backslashes, control characters, HTML-sensitive characters,
// U+2028/U+2029; invalid UTF-8 becomes U+FFFD).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
