package session

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// User is the signed-in person whose account exists: what Gate puts in the
// request context for every signed-in page.
type User struct {
	ID    string
	Email string
}

type userKey struct{}

// UserFrom returns the user Gate (or Identify) let through; ok is false
// for a request that did not pass through Gate, or that Identify served as
// a visitor.
func UserFrom(ctx context.Context) (User, bool) {
	u, ok := ctx.Value(userKey{}).(User)
	return u, ok
}

// ErrNoAccount is what an AccountCheck returns for a user whose account no
// longer exists (deleted by a GDPR request).
var ErrNoAccount = errors.New("account does not exist")

// AccountCheck returns nil when the account of user id exists,
// ErrNoAccount when it does not, another error when it cannot tell.
type AccountCheck func(ctx context.Context, id string) error

// Gate returns the one sign-in gate of the site's signed-in pages, for
// every product: a visitor who is not signed in, or whose session outlived
// its account (a GDPR deletion ends sessions, but a cookie can still be
// presented), is sent to the sign-in page and comes back to next.
// Everyone else reaches the page with their
// User in the request context (UserFrom). Middleware must run first.
func (m *Manager) Gate(exists AccountCheck) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, ok, err := m.account(r, exists)
			switch {
			case err != nil:
				m.log.Error("check account of session", "err", err)
				http.Error(w, "Sign-in is unavailable right now; try again in a moment.", http.StatusServiceUnavailable)
				return
			case !ok:
				toSignIn(w, r)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
		})
	}
}

// Identify is Gate for pages open to everyone that do more for a
// signed-in person: whoever Gate would let through reaches the page with
// their User in the request context (UserFrom), everyone else as a visitor
// (no User). When accounts cannot be checked the person is served as a
// visitor, since the page works for visitors. Middleware must run first.
func (m *Manager) Identify(exists AccountCheck) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, ok, err := m.account(r, exists)
			if err != nil {
				m.log.Warn("check account of session; serving as a visitor", "err", err)
			}
			if ok {
				r = r.WithContext(context.WithValue(r.Context(), userKey{}, u))
			}
			next.ServeHTTP(w, r)
		})
	}
}

// account returns the user of the request's session when it is signed in
// and its account exists; ok is false otherwise, err set when the account
// could not be checked.
func (m *Manager) account(r *http.Request, exists AccountCheck) (u User, ok bool, err error) {
	s := From(r.Context())
	if !s.SignedIn() {
		return User{}, false, nil
	}
	switch err := exists(r.Context(), s.UserID); {
	case errors.Is(err, ErrNoAccount):
		return User{}, false, nil
	case err != nil:
		return User{}, false, err
	}
	return User{ID: s.UserID, Email: s.Email}, true, nil
}

// toSignIn redirects to the sign-in page, which sends the person back to
// where they were going. A form post cannot be replayed after signing in,
// so it returns to the page the form was on (the Referer, when it is a page
// of this site), else to the home page.
func toSignIn(w http.ResponseWriter, r *http.Request) {
	back := r.URL.RequestURI()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		back = "/"
		if ref, err := url.Parse(r.Referer()); err == nil && ref.Host == r.Host && ref.Path != "" {
			back = ref.RequestURI()
		}
	}
	http.Redirect(w, r, "/signin?next="+url.QueryEscape(back), http.StatusSeeOther)
}
