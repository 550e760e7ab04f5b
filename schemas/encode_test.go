package schemas

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestEncodeRecordWritesEveryField: the hand-written encoder says what
// encoding/json says, for a record with every field of every type in it
// set, so a field added to Record or StepState without the encoder fails
// here rather than vanishing from the state topic.
func TestEncodeRecordWritesEveryField(t *testing.T) {
	var r Record
	fill(reflect.ValueOf(&r).Elem(), 0)
	r.V = RecordVersion // the encoder writes its own version
	want, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	got := EncodeRecord(&r)
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("EncodeRecord wrote invalid JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("EncodeRecord differs from encoding/json:\n got %s\nwant %s", got, want)
	}
}

// fill sets every exported field reachable from v to a non-zero value.
func fill(v reflect.Value, depth int) {
	if depth > 12 {
		return
	}
	switch v.Interface().(type) {
	case time.Time:
		v.Set(reflect.ValueOf(time.Date(2026, 12, 2, 10, 0, 0, 123000000, time.UTC)))
		return
	case json.RawMessage:
		v.Set(reflect.ValueOf(json.RawMessage(`{"k":[1,"two"]}`)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("s-" + v.Type().Name())
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(3)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		fill(k, depth+1)
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	}
}
