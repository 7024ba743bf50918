package analytics

import "testing"

func TestInsertTableNamesTheTableOfAnInsert(t *testing.T) {
	for query, want := range map[string]string{
		"INSERT INTO video_samples (video_id, at, views)": "video_samples",
		"insert into db.counter_minutes(tenant)":          "counter_minutes",
		"INSERT INTO `quoted` (a)":                        "quoted",
		"SELECT 1":                                        "unknown",
	} {
		if got := insertTable(query); got != want {
			t.Errorf("insertTable(%q) = %q, want %q", query, got, want)
		}
	}
}
