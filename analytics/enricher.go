package analytics

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// EnricherLessonsTable holds the Enricher's emitted lessons (migrations
// 0003, 0004).
const EnricherLessonsTable = "enricher_lessons"

// EnricherLessonsColumns are its columns in insert order.
var EnricherLessonsColumns = []string{
	"completed_at", "output_seq", "user_uuid", "language", "course_uuid",
	"subscription_type", "subscription_status", "country", "enrichment", "owner",
}

// LessonScope says whose lessons a query counts.
type LessonScope struct {
	// All counts every lesson: the operators' view.
	All bool
	// Owner, when not All, counts only lessons sent with ingest API keys of
	// this account.
	Owner string
}

// LessonCount is the number of lessons completed in one time bucket for one
// (language, subscription type, country). Empty strings stand for unknown
// (a lesson emitted with a missing dimension).
type LessonCount struct {
	Bucket           time.Time
	Language         string
	SubscriptionType string
	Country          string
	Lessons          uint64
}

// EnricherLessonCounts returns the lesson completions of scope in
// [from, to) by bucket (step, a whole number of seconds) × language ×
// subscription type × country, oldest bucket first, at most limit rows.
func EnricherLessonCounts(ctx context.Context, conn driver.Conn, scope LessonScope, from, to time.Time, step time.Duration, limit int) ([]LessonCount, error) {
	secs := int64(step / time.Second)
	if secs < 1 {
		return nil, fmt.Errorf("lesson counts: step %v is under a second", step)
	}
	// An empty owner would match the lessons nobody owns: refuse it rather
	// than show them to someone.
	if !scope.All && scope.Owner == "" {
		return nil, fmt.Errorf("lesson counts: no owner in the scope")
	}
	where, args := "", []any{secs, secs, from.UTC(), to.UTC()}
	if !scope.All {
		where = " AND owner = ?"
		args = append(args, scope.Owner)
	}
	// FINAL collapses rows written twice by a redelivery. Buckets with
	// intDiv work on 18.16 (no toStartOfInterval there).
	rows, err := conn.Query(ctx, `
		SELECT toDateTime(intDiv(toUInt32(completed_at), ?) * ?) AS bucket,
		       language, subscription_type, country, count() AS lessons
		FROM `+EnricherLessonsTable+` FINAL
		WHERE completed_at >= ? AND completed_at < ?`+where+`
		GROUP BY bucket, language, subscription_type, country
		ORDER BY bucket, lessons DESC, language, subscription_type, country
		LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("lesson counts: %w", err)
	}
	defer rows.Close()
	var out []LessonCount
	for rows.Next() {
		var c LessonCount
		if err := rows.Scan(&c.Bucket, &c.Language, &c.SubscriptionType, &c.Country, &c.Lessons); err != nil {
			return nil, fmt.Errorf("lesson counts: scan: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
