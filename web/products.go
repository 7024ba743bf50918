package web

// product is one entry of the home page and the navigation.
type product struct {
	Name    string
	Path    string
	Summary string
	Ready   bool // false renders a "coming" placeholder at Path
}

// products lists what the site offers; a product flips Ready when its pages
// land and it registers its own routes.
var products = []product{
	{Name: "Tracker", Path: "/tracker", Summary: "Track YouTube channels and videos: view curves, thumbnail and title changes, A/B tests, a weekly outlier digest."},
	{Name: "Events", Path: "/events", Summary: "Virtual community events and hackathons: tickets, magic links, live stream, chat, analytics and reports."},
	{Name: "Counter API", Path: "/counter", Summary: "Count VIEW, LIKE and SHARE per video at 100K events/s and read COUNT, SUM, AVG over any range in milliseconds."},
	{Name: "Enricher", Path: "/enricher", Summary: "User, subscription and lesson events in; every event out, lessons enriched with subscription and country."},
	{Name: "Media", Path: "/media", Summary: "Upload a video; queue-driven workers fan out one job per rendition into HLS."},
}
