package subjects

// EnricherUserEvent is a user create or update (seed 004, user/schema.json). An
// update changes only the fields it carries, so the optional fields are
// pointers: nil means "not in the event", not "empty".
type EnricherUserEvent struct {
	Operation string  `json:"operation"`
	UUID      string  `json:"uuid"`
	Name      *string `json:"name,omitempty"`
	Firstname *string `json:"firstname,omitempty"`
	Lastname  *string `json:"lastname,omitempty"`
	Country   *string `json:"country,omitempty"`
	Active    *bool   `json:"active,omitempty"`
}

// EnricherSubscriptionEvent is a subscription create or update (seed 004,
// subscription/schema.json), identified by (user_uuid, language).
type EnricherSubscriptionEvent struct {
	Operation          string  `json:"operation"`
	UserUUID           string  `json:"user_uuid"`
	Language           string  `json:"language"`
	Name               *string `json:"name,omitempty"`
	SubscriptionStatus *string `json:"subscription_status,omitempty"`
	SubscriptionType   *string `json:"subscription_type,omitempty"`
	SubscriptionPeriod *int64  `json:"subscription_period,omitempty"`
}

// EnricherLessonEvent is a completed lesson (seed 004, lesson/schema.json), as
// enricherevents.Parse reads it: every reader of a lesson takes its fields from here,
// so what validation accepted is what is used (field names match exactly;
// encoding/json would also take "USER_UUID" for user_uuid). The Enricher
// passes the producer's bytes through untouched.
type EnricherLessonEvent struct {
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
	EnricherOperationCreate = "create"
	EnricherOperationUpdate = "update"
)

// Fields the Enricher adds to a lesson.
const (
	EnricherFieldSubscriptionStatus = "subscription_status"
	EnricherFieldSubscriptionType   = "subscription_type"
	EnricherFieldCountry            = "country"
	EnricherFieldEnrichment         = "enrichment"
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

// EnricherEvent is one validated input event: exactly one of User, Subscription and
// Lesson is set.
type EnricherEvent struct {
	Kind         string
	User         *EnricherUserEvent
	Subscription *EnricherSubscriptionEvent
	Lesson       *EnricherLessonEvent
}

// UserUUID is the user the event belongs to, its partition key.
func (e EnricherEvent) UserUUID() string {
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

// EnrichedLesson is a lesson as the Enricher emits it on OUTPUT.
type EnrichedLesson struct {
	EnricherLessonEvent
	EnrichedLessonFields
}

// EnricherUserState is the stored state of one user: every field the user's events
// carried, the latest value of each. Seq is the sequence, in its partition's stream, of the
// last event applied (0 for a bulk-loaded snapshot), so an event older than
// the state (a redelivery after a takeover) never overwrites it.
type EnricherUserState struct {
	UUID      string  `json:"uuid"`
	Name      *string `json:"name,omitempty"`
	Firstname *string `json:"firstname,omitempty"`
	Lastname  *string `json:"lastname,omitempty"`
	Country   *string `json:"country,omitempty"`
	Active    *bool   `json:"active,omitempty"`
	Seq       uint64  `json:"seq,omitempty"`
}

// Apply merges e into u: the fields e carries replace u's, the others stay.
func (u *EnricherUserState) Apply(e *EnricherUserEvent, seq uint64) {
	u.UUID = e.UUID
	set(&u.Name, e.Name)
	set(&u.Firstname, e.Firstname)
	set(&u.Lastname, e.Lastname)
	set(&u.Country, e.Country)
	set(&u.Active, e.Active)
	u.Seq = seq
}

// EnricherSubscriptionState is the stored state of one user's subscription in one
// language; Seq as in UserState.
type EnricherSubscriptionState struct {
	UserUUID           string  `json:"user_uuid"`
	Language           string  `json:"language"`
	Name               *string `json:"name,omitempty"`
	SubscriptionStatus *string `json:"subscription_status,omitempty"`
	SubscriptionType   *string `json:"subscription_type,omitempty"`
	SubscriptionPeriod *int64  `json:"subscription_period,omitempty"`
	Seq                uint64  `json:"seq,omitempty"`
}

// Apply merges e into s: the fields e carries replace s's, the others stay.
func (s *EnricherSubscriptionState) Apply(e *EnricherSubscriptionEvent, seq uint64) {
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
