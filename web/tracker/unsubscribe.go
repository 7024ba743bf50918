package tracker

import (
	"net/http"

	"jetfleet/internal/tracking"
	"jetfleet/web/site"
)

// One-click unsubscribe from the weekly digest (RFC 8058). The digest
// carries List-Unsubscribe: <BASE/api/tracker/unsubscribe/TOKEN> with
// List-Unsubscribe-Post, so a mail program's unsubscribe button POSTs
// there: no session and no CSRF token by the RFC's design (the token,
// the user id sealed under TOKEN_KEY, is the authorization). A GET never
// unsubscribes — mail scanners fetch links — it shows a page asking to
// confirm, whose form posts through the site's CSRF check. The digest's
// visible link opens that page.

// APIRoutes registers the one-click endpoint on the site's /api mux (no
// session, no CSRF).
func (h *Handler) APIRoutes(api *http.ServeMux) {
	api.HandleFunc("POST /api/tracker/unsubscribe/{token}", h.unsubscribeOneClick)
	// A mail program that opens the header's URL in a browser gets the
	// confirmation page, not an unsubscription.
	api.HandleFunc("GET /api/tracker/unsubscribe/{token}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/tracker/unsubscribe/"+r.PathValue("token"), http.StatusSeeOther)
	})
}

// unsubscriber is the user the request's token stands for, "" when the
// token is not one of ours.
func (h *Handler) unsubscriber(r *http.Request) string {
	if h.d.Tokens == nil {
		return ""
	}
	uid, err := tracking.UnsubscribeUser(h.d.Tokens, r.PathValue("token"))
	if err != nil {
		return ""
	}
	return uid
}

func (h *Handler) unsubscribeOneClick(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<10)
	uid := h.unsubscriber(r)
	if uid == "" {
		site.JSONError(w, site.CodeNotFound, "This unsubscribe link is not valid.")
		return
	}
	if r.PostFormValue("List-Unsubscribe") != "One-Click" {
		site.JSONError(w, site.CodeBadRequest, "A one-click unsubscribe posts List-Unsubscribe=One-Click (RFC 8058); to unsubscribe in a browser open /tracker/unsubscribe/<token>.")
		return
	}
	if err := h.d.Store.SetDigest(r.Context(), uid, false); err != nil {
		h.d.Log.Warn("one-click unsubscribe", "err", err)
		site.JSONError(w, site.CodeUnavailable, "Unsubscribing failed for a moment; try again.")
		return
	}
	site.WriteJSON(w, http.StatusOK, map[string]any{"unsubscribed": true})
}

func (h *Handler) unsubscribeConfirm(w http.ResponseWriter, r *http.Request) {
	if h.unsubscriber(r) == "" {
		h.pages.Render(w, r, http.StatusNotFound, "Unsubscribe", unsubscribePage(r.PathValue("token"), false, false))
		return
	}
	h.pages.Render(w, r, http.StatusOK, "Unsubscribe", unsubscribePage(r.PathValue("token"), true, false))
}

func (h *Handler) unsubscribeForm(w http.ResponseWriter, r *http.Request) {
	uid := h.unsubscriber(r)
	if uid == "" {
		h.pages.Render(w, r, http.StatusNotFound, "Unsubscribe", unsubscribePage(r.PathValue("token"), false, false))
		return
	}
	if err := h.d.Store.SetDigest(r.Context(), uid, false); err != nil {
		h.pages.Fail(w, r, "unsubscribe", err)
		return
	}
	h.pages.Render(w, r, http.StatusOK, "Unsubscribed", unsubscribePage(r.PathValue("token"), true, true))
}
