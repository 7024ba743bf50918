package web

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"jetfleet/internal/accounts"
	"jetfleet/internal/mail"
	"jetfleet/subjects"
	"jetfleet/web/ratelimit"
	"jetfleet/web/site"
)

// authHandlers serve magic-link sign-in for every product: a person enters
// an address, gets a single-use link by mail, opens it and confirms with one
// click. The confirmation is a POST so that mail scanners that fetch links do
// not spend the token.
type authHandlers struct {
	s        *Server
	accounts *accounts.Store
	byClient *ratelimit.Shared
	byEmail  *ratelimit.Shared
}

func (a *authHandlers) mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /signin", a.form)
	mux.HandleFunc("POST /signin", a.request)
	mux.HandleFunc("GET /signin/verify", a.confirm)
	mux.HandleFunc("POST /signin/verify", a.verify)
	mux.HandleFunc("POST /signout", a.signOut)
	if a.s.cfg.Outbox {
		mux.HandleFunc("GET /outbox", a.outbox)
	}
}

func (a *authHandlers) form(w http.ResponseWriter, r *http.Request) {
	a.s.pages.Render(w, r, http.StatusOK, "Sign in", signInPage(localPath(r.URL.Query().Get("next")), "", ""))
}

func (a *authHandlers) request(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.PostFormValue("next"))
	typed := r.PostFormValue("email")
	email, err := accounts.NormaliseEmail(typed)
	if err != nil {
		a.s.pages.Render(w, r, http.StatusUnprocessableEntity, "Sign in", signInPage(next, typed, "That does not look like an email address. Check it and try again."))
		return
	}
	// Both limits are shared by every edge, and keyed on the normalised
	// address, so display names or case do not open a new allowance.
	for _, l := range []struct {
		lim *ratelimit.Shared
		key string
	}{{a.byClient, site.ClientIP(r)}, {a.byEmail, email}} {
		ok, err := l.lim.Allow(r.Context(), l.key)
		if err != nil {
			a.s.pages.Fail(w, r, "rate limit sign-in", err)
			return
		}
		if !ok {
			a.s.pages.Render(w, r, http.StatusTooManyRequests, "Sign in", signInPage(next, typed, "Too many sign-in requests. Wait a few minutes, then try again."))
			return
		}
	}
	token, err := a.accounts.IssueLink(r.Context(), email, next)
	if err != nil {
		a.s.pages.Fail(w, r, "issue sign-in link", err)
		return
	}
	link := strings.TrimRight(a.s.cfg.BaseURL, "/") + "/signin/verify?token=" + url.QueryEscape(token)
	err = mail.Enqueue(r.Context(), a.s.deps.JS, subjects.Mail{
		ID:      "signin:" + accounts.LinkID(token),
		To:      email,
		Subject: "Your jetfleet sign-in link",
		Text: "Open this link to sign in to jetfleet:\n\n" + link +
			"\n\nIt works once, for 15 minutes. If you did not ask for it, ignore this mail.\n",
	})
	if err != nil {
		a.s.pages.Fail(w, r, "enqueue sign-in mail", err)
		return
	}
	a.s.pages.Render(w, r, http.StatusOK, "Check your email", checkMailPage(email, a.s.cfg.Outbox))
}

func (a *authHandlers) confirm(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		a.s.pages.Render(w, r, http.StatusBadRequest, "Sign-in link", linkProblemPage("The link is missing its token. Copy the whole link from the mail."))
		return
	}
	link, err := a.accounts.PeekLink(r.Context(), token)
	if errors.Is(err, accounts.ErrInvalidLink) {
		a.s.pages.Render(w, r, http.StatusBadRequest, "Sign-in link", linkProblemPage("This sign-in link is invalid, expired or was already used. Links work once, for 15 minutes."))
		return
	}
	if err != nil {
		a.s.pages.Fail(w, r, "look up sign-in link", err)
		return
	}
	a.s.pages.Render(w, r, http.StatusOK, "Sign in", confirmSignInPage(token, link.Email))
}

func (a *authHandlers) verify(w http.ResponseWriter, r *http.Request) {
	link, err := a.accounts.RedeemLink(r.Context(), r.PostFormValue("token"))
	if errors.Is(err, accounts.ErrInvalidLink) {
		a.s.pages.Render(w, r, http.StatusBadRequest, "Sign-in link", linkProblemPage("This sign-in link is invalid, expired or was already used. Links work once, for 15 minutes."))
		return
	}
	if err != nil {
		a.s.pages.Fail(w, r, "redeem sign-in link", err)
		return
	}
	user, err := a.accounts.EnsureUser(r.Context(), link.Email)
	if err != nil {
		a.s.pages.Fail(w, r, "load user", err)
		return
	}
	if _, err := a.s.sessions.SignIn(r.Context(), w, r, user.ID, user.Email); err != nil {
		a.s.pages.Fail(w, r, "start session", err)
		return
	}
	http.Redirect(w, r, localPath(link.Next), http.StatusSeeOther)
}

func (a *authHandlers) signOut(w http.ResponseWriter, r *http.Request) {
	if err := a.s.sessions.SignOut(r.Context(), w, r); err != nil {
		a.s.pages.Fail(w, r, "sign out", err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a *authHandlers) outbox(w http.ResponseWriter, r *http.Request) {
	kv, err := a.s.deps.JS.KeyValue(r.Context(), subjects.OutboxBucket)
	if err != nil {
		a.s.pages.Fail(w, r, "open outbox", err)
		return
	}
	entries, err := mail.NewOutbox(kv).List(r.Context(), 50)
	if err != nil {
		a.s.pages.Fail(w, r, "list outbox", err)
		return
	}
	a.s.pages.Render(w, r, http.StatusOK, "Outbox", outboxPage(entries))
}

// localPath keeps redirects on this site. It accepts only a path that
// parses with no scheme, host or user, starts with a single "/" and holds no
// control character or backslash (browsers read "\\" as "/", and a tab or
// newline is dropped before "//evil" is read as a host), and returns its
// re-serialised form, so what is redirected to is what was checked.
// Anything else becomes "/".
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return "/"
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	// Decoded forms too: "/%2F%2Fevil" or "/%09/evil" must not become a
	// host once some proxy or browser decodes them.
	for _, s := range []string{p, u.Path, u.RawQuery, u.Fragment} {
		if unsafeInPath(s) {
			return "/"
		}
	}
	if strings.HasPrefix(u.Path, "//") || !strings.HasPrefix(u.Path, "/") {
		return "/"
	}
	out := u.EscapedPath()
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	if strings.HasPrefix(out, "//") || strings.HasPrefix(out, "/\\") {
		return "/"
	}
	return out
}

func unsafeInPath(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return true
		}
	}
	if d, err := url.PathUnescape(s); err == nil && d != s {
		return unsafeInPath(d) || strings.HasPrefix(d, "//") || strings.HasPrefix(d, "/\\")
	}
	return false
}

var urlPattern = regexp.MustCompile(`https?://[^\s<>"]+`)

type textPart struct {
	Text string
	URL  bool
}

// linkify splits text into plain and URL parts so the outbox can make links
// clickable without rendering any HTML from the mail.
func linkify(text string) []textPart {
	var parts []textPart
	last := 0
	for _, m := range urlPattern.FindAllStringIndex(text, -1) {
		if m[0] > last {
			parts = append(parts, textPart{Text: text[last:m[0]]})
		}
		parts = append(parts, textPart{Text: text[m[0]:m[1]], URL: true})
		last = m[1]
	}
	if last < len(text) {
		parts = append(parts, textPart{Text: text[last:]})
	}
	return parts
}

func newAuthHandlers(s *Server, store *accounts.Store) (*authHandlers, error) {
	byClient, err := ratelimit.NewShared(s.deps.JS, "signin-client", 10, time.Minute) // per client address
	if err != nil {
		return nil, err
	}
	byEmail, err := ratelimit.NewShared(s.deps.JS, "signin-inbox", 3, 6*time.Minute) // per inbox
	if err != nil {
		return nil, err
	}
	return &authHandlers{s: s, accounts: store, byClient: byClient, byEmail: byEmail}, nil
}
