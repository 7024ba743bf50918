// Package enricherevents reads the Enricher's events: it decodes and
// validates input events against the seed's schemas (004) and reads the
// lessons the Enricher emits, with one hand-tuned scanner, so that what
// validation accepted is exactly what every reader uses. The edge's HTTP
// ingest, the Enricher, its bulk load and its ClickHouse sink all parse
// here; the event types are the contract's, in subjects.
package enricherevents

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"jetfleet/subjects"
)

// ValidationError lists every problem found in one event, each naming the
// field, so a producer can fix all of them at once.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid event: " + strings.Join(e.Problems, "; ")
}

// fieldType is the JSON type a schema property requires.
type fieldType int

const (
	typeString fieldType = iota
	typeInteger
	typeBoolean
)

func (t fieldType) String() string {
	return [...]string{"a string", "an integer", "a boolean"}[t]
}

// The seeds' schemas, property by property. Properties not listed are
// allowed (the schemas do not forbid additional properties) and passed
// through.
var (
	userSchema = map[string]fieldType{
		"operation": typeString, "name": typeString, "uuid": typeString, "firstname": typeString,
		"lastname": typeString, "country": typeString, "active": typeBoolean,
	}
	subscriptionSchema = map[string]fieldType{
		"operation": typeString, "name": typeString, "user_uuid": typeString, "language": typeString,
		"subscription_status": typeString, "subscription_type": typeString, "subscription_period": typeInteger,
	}
	lessonSchema = map[string]fieldType{
		"content_release_id": typeString, "title": typeString, "language": typeString, "course_uuid": typeString,
		"course_title": typeString, "number_of_lessons_in_course": typeInteger,
		"completed_lessons_in_course": typeInteger, "percentage_completed_in_course": typeInteger,
		"user_uuid": typeString,
	}
)

// Parse decodes and validates an event of kind against the seed's
// schema: a JSON object; every known property of its type; the identifiers
// (uuid, or user_uuid and language) present and usable as keys; a known
// operation for users and subscriptions. It returns a *ValidationError
// listing every problem.
func Parse(kind string, data []byte) (subjects.EnricherEvent, error) {
	return parse(kind, data, nil, false)
}

// Parser parses events with a scratch list of members reused from call to
// call: one per goroutine (the Enricher has one per partition).
type Parser struct{ scratch fields }

// ParseKeys validates an event exactly as Parse does and returns it the
// same, except that a lesson comes back with only its keys (UserUUID and
// Language): the Enricher passes the producer's bytes through and needs
// nothing else, so it pays for no other field (its hot path).
func (p *Parser) ParseKeys(kind string, data []byte) (subjects.EnricherEvent, error) {
	return parse(kind, data, &p.scratch, true)
}

// HasAny reports whether the event ParseKeys parsed last (successfully) has
// a member of one of the names; valid until the next call.
func (p *Parser) HasAny(names ...string) bool {
	for _, f := range p.scratch {
		for _, n := range names {
			if f.is(n) {
				return true
			}
		}
	}
	return false
}

// parse is Parse; scratch, when set, holds the members (reused); keysOnly
// leaves a lesson's other fields out.
func parse(kind string, data []byte, scratch *fields, keysOnly bool) (subjects.EnricherEvent, error) {
	var schema map[string]fieldType
	var required []string
	switch kind {
	case subjects.EnricherKindUser:
		schema, required = userSchema, []string{"operation", "uuid"}
	case subjects.EnricherKindSubscription:
		schema, required = subscriptionSchema, []string{"operation", "user_uuid", "language"}
	case subjects.EnricherKindLesson:
		schema, required = lessonSchema, []string{"user_uuid", "language"}
	default:
		return subjects.EnricherEvent{}, &ValidationError{Problems: []string{fmt.Sprintf("kind %q: must be one of %s", kind, strings.Join(subjects.EnricherKinds[:], ", "))}}
	}
	var buf fields
	if scratch != nil {
		buf = *scratch
	}
	fields, ok := scanObject(buf, data)
	if scratch != nil {
		*scratch = fields // the members, for HasAny; the next call reuses the array
		if !ok {
			*scratch = buf[:0]
		}
	}
	if !ok {
		return subjects.EnricherEvent{}, &ValidationError{Problems: []string{"body: must be one JSON object"}}
	}
	var problems []string
	// The common case, every member of its type, is checked without
	// sorting the names; only a bad event pays for stable messages.
	typesOK := true
	for _, f := range fields {
		want, known := schema[f.name]
		if !f.esc {
			want, known = schema[string(f.key)] // no copy: a map index
		}
		if known && !hasType(f.raw, want) {
			typesOK = false
			break
		}
	}
	if !typesOK {
		names := make([]string, 0, len(fields))
		for _, f := range fields {
			names = append(names, f.String())
		}
		slices.Sort(names) // stable messages
		names = slices.Compact(names)
		for _, name := range names {
			want, known := schema[name]
			raw, _ := fields.get(name)
			if known && !hasType(raw, want) {
				problems = append(problems, fmt.Sprintf("%s: must be %s, got %s", name, want, jsonTypeOf(raw)))
			}
		}
	}
	for _, name := range required {
		raw, ok := fields.get(name)
		if !ok {
			problems = append(problems, name+": required")
			continue
		}
		if !hasType(raw, typeString) {
			continue // type already reported
		}
		s := rawString(raw)
		if name == "operation" {
			if s != subjects.EnricherOperationCreate && s != subjects.EnricherOperationUpdate {
				problems = append(problems, fmt.Sprintf("operation: must be %q or %q, got %q", subjects.EnricherOperationCreate, subjects.EnricherOperationUpdate, s))
			}
			continue
		}
		if msg := keyProblem(s); msg != "" {
			problems = append(problems, name+": "+msg)
		}
	}
	if len(problems) > 0 {
		return subjects.EnricherEvent{}, &ValidationError{Problems: problems}
	}
	// Every field is known to have its type: fill the struct from the raw
	// values instead of decoding the whole object a second time (this is
	// the Enricher's hot path).
	ev := subjects.EnricherEvent{Kind: kind}
	str := func(name string) *string {
		raw, ok := fields.get(name)
		if !ok {
			return nil
		}
		v := rawString(raw)
		return &v
	}
	num := func(name string) *int64 {
		raw, ok := fields.get(name)
		if !ok {
			return nil
		}
		v, _ := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
		return &v
	}
	switch kind {
	case subjects.EnricherKindUser:
		ev.User = &subjects.EnricherUserEvent{Operation: *str("operation"), UUID: *str("uuid"), Name: str("name"),
			Firstname: str("firstname"), Lastname: str("lastname"), Country: str("country")}
		if raw, ok := fields.get("active"); ok {
			v := string(bytes.TrimSpace(raw)) == "true"
			ev.User.Active = &v
		}
	case subjects.EnricherKindSubscription:
		ev.Subscription = &subjects.EnricherSubscriptionEvent{Operation: *str("operation"), UserUUID: *str("user_uuid"), Language: *str("language"),
			Name: str("name"), SubscriptionStatus: str("subscription_status"), SubscriptionType: str("subscription_type"),
			SubscriptionPeriod: num("subscription_period")}
	case subjects.EnricherKindLesson:
		if keysOnly {
			ev.Lesson = &subjects.EnricherLessonEvent{UserUUID: *str("user_uuid"), Language: *str("language")}
			break
		}
		ev.Lesson = &subjects.EnricherLessonEvent{UserUUID: *str("user_uuid"), Language: *str("language"),
			ContentReleaseID: str("content_release_id"), Title: str("title"), CourseUUID: str("course_uuid"),
			CourseTitle: str("course_title"), NumberOfLessonsInCourse: num("number_of_lessons_in_course"),
			CompletedLessonsInCourse:    num("completed_lessons_in_course"),
			PercentageCompletedInCourse: num("percentage_completed_in_course")}
	}
	return ev, nil
}

// ParseEnrichedLesson reads an emitted lesson with the same parser (and so
// the same field names) as Parse, for consumers of OUTPUT.
func ParseEnrichedLesson(data []byte) (subjects.EnrichedLesson, error) {
	ev, err := Parse(subjects.EnricherKindLesson, data)
	if err != nil {
		return subjects.EnrichedLesson{}, err
	}
	fields, _ := scanObject(nil, data) // Parse accepted it: one object
	out := subjects.EnrichedLesson{EnricherLessonEvent: *ev.Lesson}
	var problems []string
	for name, dst := range map[string]**string{
		subjects.EnricherFieldSubscriptionStatus: &out.SubscriptionStatus, subjects.EnricherFieldSubscriptionType: &out.SubscriptionType,
		subjects.EnricherFieldCountry: &out.Country,
	} {
		raw, ok := fields.get(name)
		switch {
		case !ok || string(bytes.TrimSpace(raw)) == "null":
		case hasType(raw, typeString):
			v := rawString(raw)
			*dst = &v
		default:
			problems = append(problems, fmt.Sprintf("%s: must be a string or null, got %s", name, jsonTypeOf(raw)))
		}
	}
	raw, ok := fields.get(subjects.EnricherFieldEnrichment)
	if !ok || !hasType(raw, typeString) {
		problems = append(problems, subjects.EnricherFieldEnrichment+": required, a string")
	} else {
		out.Enrichment = rawString(raw)
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return subjects.EnrichedLesson{}, &ValidationError{Problems: problems}
	}
	return out, nil
}

// field is one member of a JSON object, its value undecoded. The name is
// kept as the bytes between its quotes (key) unless it holds escapes, then
// decoded (name): most names are compared once or twice, and building a
// string for each is most of the parse's garbage.
type field struct {
	key  []byte
	name string
	esc  bool
	raw  []byte
}

// is reports whether the member is called name.
func (f field) is(name string) bool {
	if f.esc {
		return f.name == name
	}
	return string(f.key) == name
}

// String is the member's name. Unescaped names are converted on every call:
// use it where the compiler avoids the copy (map index, comparison) or off
// the hot path.
func (f field) String() string {
	if f.esc {
		return f.name
	}
	return string(f.key)
}

// fields are the members of one JSON object, in document order.
type fields []field

// get returns the value of name; the last one wins, as with
// encoding/json.
func (fs fields) get(name string) ([]byte, bool) {
	for i := len(fs) - 1; i >= 0; i-- {
		if fs[i].is(name) {
			return fs[i].raw, true
		}
	}
	return nil, false
}

// scanObject splits a JSON object into its members without decoding the
// values (the Enricher's hot path: cheaper than decoding into a map),
// appending them to dst[:0] (a reused buffer, or nil). It reports false when
// data is not valid JSON or not an object.
func scanObject(dst fields, data []byte) (fields, bool) {
	if !json.Valid(data) {
		return nil, false
	}
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	out := dst[:0]
	if out == nil {
		out = make(fields, 0, 12)
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return out, true
	}
	for i < len(data) {
		// Valid JSON: a key string, ':', a value, then ',' or '}'.
		end := stringEnd(data, i)
		f := field{key: data[i+1 : end-1]}
		if bytes.IndexByte(f.key, '\\') >= 0 {
			f.esc, f.name = true, rawString(data[i:end])
		}
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // ':'
		vend := valueEnd(data, i)
		f.raw = data[i:vend]
		out = append(out, f)
		i = skipSpace(data, vend)
		if data[i] == '}' {
			return out, true
		}
		i = skipSpace(data, i+1) // ','
	}
	return nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string literal starting at i.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// valueEnd returns the index after the (valid) value starting at i.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default: // number, true, false, null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		return j
	}
}

// rawString decodes a JSON string literal, without the decoder's
// reflection when it holds no escapes.
func rawString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

// keyProblem says why s cannot identify a user or a language (it becomes a
// subject token and part of a KV key), or "" when it can.
func keyProblem(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > 128 {
		return "must be at most 128 characters"
	}
	for _, r := range s {
		ok := r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
		if !ok {
			return fmt.Sprintf("%q: only letters, digits, '-' and '_' are allowed", s)
		}
	}
	return ""
}

func hasType(raw json.RawMessage, t fieldType) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return false
	}
	switch t {
	case typeString:
		return raw[0] == '"'
	case typeBoolean:
		return string(raw) == "true" || string(raw) == "false"
	case typeInteger:
		if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
			return false
		}
		_, err := strconv.ParseInt(string(raw), 10, 64)
		return err == nil
	}
	return false
}

func jsonTypeOf(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch c := raw[0]; {
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	default:
		return "the number " + string(raw)
	}
}
