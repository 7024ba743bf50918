package analytics

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// VideoSample is one point of a video's views curve (video_samples).
type VideoSample struct {
	At        time.Time
	Views     uint64
	Title     string
	ThumbHash string
}

// VideoChange is a title or thumbnail change the Tracker detected
// (video_changes). Kind is "title" or "thumbnail"; Before and After hold the
// titles or the thumbnail hashes.
type VideoChange struct {
	At            time.Time
	Kind          string
	Before, After string
}

// VideoSamples returns a video's samples since since, oldest first, at most
// limit. FINAL collapses a sample written twice for one slot.
func VideoSamples(ctx context.Context, conn driver.Conn, videoID string, since time.Time, limit int) ([]VideoSample, error) {
	rows, err := conn.Query(ctx, `
		SELECT sampled_at, views, title, thumb_hash
		FROM video_samples FINAL
		WHERE video_id = ? AND sampled_at >= ?
		ORDER BY sampled_at
		LIMIT ?`, videoID, since.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("video samples %s: %w", videoID, err)
	}
	defer rows.Close()
	var out []VideoSample
	for rows.Next() {
		var s VideoSample
		if err := rows.Scan(&s.At, &s.Views, &s.Title, &s.ThumbHash); err != nil {
			return nil, fmt.Errorf("video samples %s: scan: %w", videoID, err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// VideoChanges returns a video's title and thumbnail changes, oldest first.
func VideoChanges(ctx context.Context, conn driver.Conn, videoID string, limit int) ([]VideoChange, error) {
	rows, err := conn.Query(ctx, `
		SELECT changed_at, kind, before, after
		FROM video_changes FINAL
		WHERE video_id = ?
		ORDER BY changed_at, kind
		LIMIT ?`, videoID, limit)
	if err != nil {
		return nil, fmt.Errorf("video changes %s: %w", videoID, err)
	}
	defer rows.Close()
	var out []VideoChange
	for rows.Next() {
		var c VideoChange
		if err := rows.Scan(&c.At, &c.Kind, &c.Before, &c.After); err != nil {
			return nil, fmt.Errorf("video changes %s: scan: %w", videoID, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
