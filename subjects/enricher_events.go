package subjects

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// UserEvent is a user create or update (seed 004, user/schema.json). An
// update changes only the fields it carries, so the optional fields are
// pointers: nil means "not in the event", not "empty".
type UserEvent struct {
	Operation string  `json:"operation"`
	UUID      string  `json:"uuid"`
	Name      *string `json:"name,omitempty"`
	Firstname *string `json:"firstname,omitempty"`
	Lastname  *string `json:"lastname,omitempty"`
	Country   *string `json:"country,omitempty"`
	Active    *bool   `json:"active,omitempty"`
}

// SubscriptionEvent is a subscription create or update (seed 004,
// subscription/schema.json), identified by (user_uuid, language).
type SubscriptionEvent struct {
	Operation          string  `json:"operation"`
	UserUUID           string  `json:"user_uuid"`
	Language           string  `json:"language"`
	Name               *string `json:"name,omitempty"`
	SubscriptionStatus *string `json:"subscription_status,omitempty"`
	SubscriptionType   *string `json:"subscription_type,omitempty"`
	SubscriptionPeriod *int64  `json:"subscription_period,omitempty"`
}

// LessonEvent is a completed lesson (seed 004, lesson/schema.json), as
// ParseEvent reads it: every reader of a lesson takes its fields from here,
// so what validation accepted is what is used (field names match exactly;
// encoding/json would also take "USER_UUID" for user_uuid). The Enricher
// passes the producer's bytes through untouched.
type LessonEvent struct {
	UserUUID                    string  `json:"user_uuid"`
	Language                    string  `json:"language"`
	ContentReleaseID            *string `json:"content_release_id,omitempty"`
	Title                       *string `json:"title,omitempty"`
	CourseUUID                  *string `json:"course_uuid,omitempty"`
	CourseTitle                 *string `json:"course_title,omitempty"`
	NumberOfLessonsInCourse     *int64  `json:"number_of_lessons_in_course,omitempty"`
	CompletedLessonsInCourse    *int64  `json:"completed_lessons_in_course,omitempty"`
	PercentageCompletedInCourse *int64  `json:"percentage_completed_in_course,omitempty"`
}

// Operations of user and subscription events.
const (
	OperationCreate = "create"
	OperationUpdate = "update"
)

// Fields the Enricher adds to a lesson.
const (
	FieldSubscriptionStatus = "subscription_status"
	FieldSubscriptionType   = "subscription_type"
	FieldCountry            = "country"
	FieldEnrichment         = "enrichment"
)

// Enrichment statuses of an emitted lesson: what was known at the lesson's
// place in its user's stream. The unknown fields are null. An unknown user
// is reported as missing_user whether or not the subscription is known
// (the subscription fields tell).
const (
	EnrichmentComplete            = "complete"
	EnrichmentMissingUser         = "missing_user"
	EnrichmentMissingSubscription = "missing_subscription"
)

// EnrichedLessonFields are the fields of an emitted lesson that the Enricher
// sets, for consumers that decode only those.
type EnrichedLessonFields struct {
	SubscriptionStatus *string `json:"subscription_status"`
	SubscriptionType   *string `json:"subscription_type"`
	Country            *string `json:"country"`
	Enrichment         string  `json:"enrichment"`
}

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

// Event is one validated input event: exactly one of User, Subscription and
// Lesson is set.
type Event struct {
	Kind         string
	User         *UserEvent
	Subscription *SubscriptionEvent
	Lesson       *LessonEvent
}

// UserUUID is the user the event belongs to, its partition key.
func (e Event) UserUUID() string {
	switch {
	case e.User != nil:
		return e.User.UUID
	case e.Subscription != nil:
		return e.Subscription.UserUUID
	case e.Lesson != nil:
		return e.Lesson.UserUUID
	}
	return ""
}

// ParseEvent decodes and validates an event of kind against the seed's
// schema: a JSON object; every known property of its type; the identifiers
// (uuid, or user_uuid and language) present and usable as keys; a known
// operation for users and subscriptions. It returns a *ValidationError
// listing every problem.
func ParseEvent(kind string, data []byte) (Event, error) {
	var schema map[string]fieldType
	var required []string
	switch kind {
	case KindUser:
		schema, required = userSchema, []string{"operation", "uuid"}
	case KindSubscription:
		schema, required = subscriptionSchema, []string{"operation", "user_uuid", "language"}
	case KindLesson:
		schema, required = lessonSchema, []string{"user_uuid", "language"}
	default:
		return Event{}, &ValidationError{Problems: []string{fmt.Sprintf("kind %q: must be one of %s", kind, strings.Join(EnricherKinds[:], ", "))}}
	}
	fields, ok := scanObject(data)
	if !ok {
		return Event{}, &ValidationError{Problems: []string{"body: must be one JSON object"}}
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
			if s != OperationCreate && s != OperationUpdate {
				problems = append(problems, fmt.Sprintf("operation: must be %q or %q, got %q", OperationCreate, OperationUpdate, s))
			}
			continue
		}
		if msg := keyProblem(s); msg != "" {
			problems = append(problems, name+": "+msg)
		}
	}
	if len(problems) > 0 {
		return Event{}, &ValidationError{Problems: problems}
	}
	// Every field is known to have its type: fill the struct from the raw
	// values instead of decoding the whole object a second time (this is
	// the Enricher's hot path).
	ev := Event{Kind: kind}
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
	case KindUser:
		ev.User = &UserEvent{Operation: *str("operation"), UUID: *str("uuid"), Name: str("name"),
			Firstname: str("firstname"), Lastname: str("lastname"), Country: str("country")}
		if raw, ok := fields.get("active"); ok {
			v := string(bytes.TrimSpace(raw)) == "true"
			ev.User.Active = &v
		}
	case KindSubscription:
		ev.Subscription = &SubscriptionEvent{Operation: *str("operation"), UserUUID: *str("user_uuid"), Language: *str("language"),
			Name: str("name"), SubscriptionStatus: str("subscription_status"), SubscriptionType: str("subscription_type"),
			SubscriptionPeriod: num("subscription_period")}
	case KindLesson:
		ev.Lesson = &LessonEvent{UserUUID: *str("user_uuid"), Language: *str("language"),
			ContentReleaseID: str("content_release_id"), Title: str("title"), CourseUUID: str("course_uuid"),
			CourseTitle: str("course_title"), NumberOfLessonsInCourse: num("number_of_lessons_in_course"),
			CompletedLessonsInCourse:    num("completed_lessons_in_course"),
			PercentageCompletedInCourse: num("percentage_completed_in_course")}
	}
	return ev, nil
}

// EnrichedLesson is a lesson as the Enricher emits it on OUTPUT.
type EnrichedLesson struct {
	LessonEvent
	EnrichedLessonFields
}

// ParseEnrichedLesson reads an emitted lesson with the same parser (and so
// the same field names) as ParseEvent, for consumers of OUTPUT.
func ParseEnrichedLesson(data []byte) (EnrichedLesson, error) {
	ev, err := ParseEvent(KindLesson, data)
	if err != nil {
		return EnrichedLesson{}, err
	}
	fields, _ := scanObject(data) // ParseEvent accepted it: one object
	out := EnrichedLesson{LessonEvent: *ev.Lesson}
	var problems []string
	for name, dst := range map[string]**string{
		FieldSubscriptionStatus: &out.SubscriptionStatus, FieldSubscriptionType: &out.SubscriptionType,
		FieldCountry: &out.Country,
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
	raw, ok := fields.get(FieldEnrichment)
	if !ok || !hasType(raw, typeString) {
		problems = append(problems, FieldEnrichment+": required, a string")
	} else {
		out.Enrichment = rawString(raw)
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return EnrichedLesson{}, &ValidationError{Problems: problems}
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
// values (the Enricher's hot path: cheaper than decoding into a map). It
// reports false when data is not valid JSON or not an object.
func scanObject(data []byte) (fields, bool) {
	if !json.Valid(data) {
		return nil, false
	}
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	out := make(fields, 0, 12)
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

// UserState is the stored state of one user: every field the user's events
// carried, the latest value of each. Seq is the INPUT stream sequence of the
// last event applied (0 for a bulk-loaded snapshot), so an event older than
// the state (a redelivery after a takeover) never overwrites it.
type UserState struct {
	UUID      string  `json:"uuid"`
	Name      *string `json:"name,omitempty"`
	Firstname *string `json:"firstname,omitempty"`
	Lastname  *string `json:"lastname,omitempty"`
	Country   *string `json:"country,omitempty"`
	Active    *bool   `json:"active,omitempty"`
	Seq       uint64  `json:"seq,omitempty"`
}

// Apply merges e into u: the fields e carries replace u's, the others stay.
func (u *UserState) Apply(e *UserEvent, seq uint64) {
	u.UUID = e.UUID
	set(&u.Name, e.Name)
	set(&u.Firstname, e.Firstname)
	set(&u.Lastname, e.Lastname)
	set(&u.Country, e.Country)
	set(&u.Active, e.Active)
	u.Seq = seq
}

// SubscriptionState is the stored state of one user's subscription in one
// language; Seq as in UserState.
type SubscriptionState struct {
	UserUUID           string  `json:"user_uuid"`
	Language           string  `json:"language"`
	Name               *string `json:"name,omitempty"`
	SubscriptionStatus *string `json:"subscription_status,omitempty"`
	SubscriptionType   *string `json:"subscription_type,omitempty"`
	SubscriptionPeriod *int64  `json:"subscription_period,omitempty"`
	Seq                uint64  `json:"seq,omitempty"`
}

// Apply merges e into s: the fields e carries replace s's, the others stay.
func (s *SubscriptionState) Apply(e *SubscriptionEvent, seq uint64) {
	s.UserUUID, s.Language = e.UserUUID, e.Language
	set(&s.Name, e.Name)
	set(&s.SubscriptionStatus, e.SubscriptionStatus)
	set(&s.SubscriptionType, e.SubscriptionType)
	set(&s.SubscriptionPeriod, e.SubscriptionPeriod)
	s.Seq = seq
}

func set[T any](dst **T, v *T) {
	if v != nil {
		c := *v
		*dst = &c
	}
}
