package web

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/a-h/templ"

	"jetfleet/internal/accounts"
	"jetfleet/internal/mail"
	"jetfleet/subjects"
	"jetfleet/web/ratelimit"
)

// authHandlers serve magic-link sign-in for every product: a person enters
// an address, gets a single-use link by mail, opens it and confirms with one
// click. The confirmation is a POST so that mail scanners that fetch links do
// not spend the token.
type authHandlers struct {
	s        *Server
	accounts *accounts.Store
	byClient *ratelimit.Keyed
	byEmail  *ratelimit.Keyed
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
	render(w, r, http.StatusOK, signInPage(localPath(r.URL.Query().Get("next")), "", ""))
}

func (a *authHandlers) request(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.PostFormValue("next"))
	typed := r.PostFormValue("email")
	email, err := accounts.NormaliseEmail(typed)
	if err != nil {
		render(w, r, http.StatusUnprocessableEntity, signInPage(next, typed, "That does not look like an email address. Check it and try again."))
		return
	}
	if !a.byClient.Allow(clientIP(r)) || !a.byEmail.Allow(email) {
		render(w, r, http.StatusTooManyRequests, signInPage(next, typed, "Too many sign-in requests. Wait a few minutes, then try again."))
		return
	}
	token, err := a.accounts.IssueLink(r.Context(), email, next)
	if err != nil {
		a.fail(w, r, "issue sign-in link", err)
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
		a.fail(w, r, "enqueue sign-in mail", err)
		return
	}
	render(w, r, http.StatusOK, checkMailPage(email, a.s.cfg.Outbox))
}

func (a *authHandlers) confirm(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		render(w, r, http.StatusBadRequest, linkProblemPage("The link is missing its token. Copy the whole link from the mail."))
		return
	}
	link, err := a.accounts.PeekLink(r.Context(), token)
	if errors.Is(err, accounts.ErrInvalidLink) {
		render(w, r, http.StatusBadRequest, linkProblemPage("This sign-in link is invalid, expired or was already used. Links work once, for 15 minutes."))
		return
	}
	if err != nil {
		a.fail(w, r, "look up sign-in link", err)
		return
	}
	render(w, r, http.StatusOK, confirmSignInPage(token, link.Email))
}

func (a *authHandlers) verify(w http.ResponseWriter, r *http.Request) {
	link, err := a.accounts.RedeemLink(r.Context(), r.PostFormValue("token"))
	if errors.Is(err, accounts.ErrInvalidLink) {
		render(w, r, http.StatusBadRequest, linkProblemPage("This sign-in link is invalid, expired or was already used. Links work once, for 15 minutes."))
		return
	}
	if err != nil {
		a.fail(w, r, "redeem sign-in link", err)
		return
	}
	user, err := a.accounts.EnsureUser(r.Context(), link.Email)
	if err != nil {
		a.fail(w, r, "load user", err)
		return
	}
	if _, err := a.s.sessions.SignIn(r.Context(), w, r, user.ID, user.Email); err != nil {
		a.fail(w, r, "start session", err)
		return
	}
	http.Redirect(w, r, localPath(link.Next), http.StatusSeeOther)
}

func (a *authHandlers) signOut(w http.ResponseWriter, r *http.Request) {
	if err := a.s.sessions.SignOut(r.Context(), w, r); err != nil {
		a.fail(w, r, "sign out", err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a *authHandlers) outbox(w http.ResponseWriter, r *http.Request) {
	kv, err := a.s.deps.JS.KeyValue(r.Context(), subjects.OutboxBucket)
	if err != nil {
		a.fail(w, r, "open outbox", err)
		return
	}
	entries, err := mail.NewOutbox(kv).List(r.Context(), 50)
	if err != nil {
		a.fail(w, r, "list outbox", err)
		return
	}
	render(w, r, http.StatusOK, outboxPage(entries))
}

func (a *authHandlers) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.s.deps.Log.Error(what, "path", r.URL.Path, "err", err)
	http.Error(w, "Something went wrong on our side; try again in a moment.", http.StatusInternalServerError)
}

// render writes a component with a status code.
func render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = c.Render(r.Context(), w)
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

// clientIP is the peer address. Behind a proxy every client shares the
// proxy's address; limits then apply to it as a whole (the per-email limit
// still protects each inbox).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
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

func newAuthHandlers(s *Server, store *accounts.Store) *authHandlers {
	return &authHandlers{
		s:        s,
		accounts: store,
		byClient: ratelimit.New(6*time.Second, 10), // 10 at once, then 10 a minute per address
		byEmail:  ratelimit.New(2*time.Minute, 3),  // 3 at once, then one every 2 minutes per inbox
	}
}
