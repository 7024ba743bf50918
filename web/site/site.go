// Package site is what every product's part of the edge shares, so that no
// product package writes its own copy: the one page layout (Layout) and
// rendering a page in it with a status (Pages.Render), the HTML answer to
// a failure on our side (Pages.Fail), the JSON error answer of the /api/*
// routes with its stable machine-readable code (JSONError, Code), and what
// a request says about its caller (ClientIP, APIKey). The sign-in gate is
// web/session's Gate; package web wires the navigation (WithNav).
package site

import (
	"log/slog"
	"net/http"

	"github.com/a-h/templ"

	"jetfleet/web/session"
)

// Pages answers a product's page requests: its pages in the site's layout
// and the page shown when something fails on our side. Log is the
// product's logger.
type Pages struct {
	Log *slog.Logger
}

// Render writes body framed by the site's layout, with status.
func (p Pages) Render(w http.ResponseWriter, r *http.Request, status int, title string, body templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := frame(title, body).Render(r.Context(), w); err != nil {
		// The status is sent; what is left is to say why the page is cut
		// short (most often the browser went away).
		p.logger().Warn("render", "path", r.URL.Path, "err", err)
	}
}

// Fail answers 500 with a page that says the failure is ours, and logs
// what failed with the path and the user's id (never their address, which
// is personal data that logs must not keep).
func (p Pages) Fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	p.logger().Error(what, "path", r.URL.Path, "user", userID(r), "err", err)
	p.Render(w, r, http.StatusInternalServerError, "Something went wrong", failurePage())
}

func (p Pages) logger() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

// userID is the id of the signed-in user, empty for a visitor.
func userID(r *http.Request) string {
	if u, ok := session.UserFrom(r.Context()); ok {
		return u.ID
	}
	return session.From(r.Context()).UserID
}
