package blob

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Handler serves GET (and HEAD) /blobs/{key...} from store for URLs signed
// by signer: 403 for a missing, tampered or expired signature, 404 for a
// missing object. Responses carry Content-Type, Content-Length, ETag,
// Last-Modified and a Cache-Control that ends with the URL's validity. Mount
// it at the root of the base URL given to NewObjectStore (strip any path
// prefix first).
func Handler(store Store, signer *URLSigner) http.Handler {
	mux := http.NewServeMux()
	h := &handler{store: store, signer: signer}
	mux.Handle("GET /blobs/{key...}", h)
	// Uploads from browsers, signed by ObjectStore.Upload (upload.go).
	mux.HandleFunc("PUT /blobs/{key...}", h.servePut)
	return mux
}

type handler struct {
	store  Store
	signer *URLSigner
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	q := r.URL.Query()
	unix, err := strconv.ParseInt(q.Get("exp"), 10, 64)
	if err != nil {
		http.Error(w, "forbidden: link has no valid expiry", http.StatusForbidden)
		return
	}
	exp := time.Unix(unix, 0)
	if !h.signer.Verify(key, exp, q.Get("sig")) {
		http.Error(w, "forbidden: link signature is invalid", http.StatusForbidden)
		return
	}
	left := time.Until(exp)
	if left <= 0 {
		http.Error(w, "forbidden: link has expired", http.StatusForbidden)
		return
	}

	var (
		body io.ReadCloser
		info Info
	)
	// HEAD needs only the metadata; fetching the chunks would be wasted.
	if r.Method == http.MethodHead {
		info, err = h.store.Stat(r.Context(), key)
	} else {
		body, info, err = h.store.Get(r.Context(), key)
	}
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrInvalidKey):
		http.Error(w, "not found", http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, "blob store unavailable", http.StatusBadGateway)
		return
	}
	if body != nil {
		defer body.Close()
	}

	hdr := w.Header()
	etag := `"` + info.ETag + `"`
	if info.ETag != "" {
		hdr.Set("ETag", etag)
	}
	// The URL stops working at exp, so no cache should keep it longer.
	hdr.Set("Cache-Control", "private, max-age="+strconv.FormatInt(int64(left/time.Second), 10))
	if !info.ModTime.IsZero() {
		hdr.Set("Last-Modified", info.ModTime.UTC().Format(http.TimeFormat))
	}
	if info.ETag != "" && r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Type", contentTypeOrDefault(info.ContentType))
	hdr.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	// Stored content types come from uploads; never let a browser guess
	// a more dangerous one.
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if body == nil {
		return
	}
	if _, err := io.Copy(w, body); err != nil {
		// Headers are gone; abort so the client sees a broken response,
		// not a short one that looks complete.
		panic(http.ErrAbortHandler)
	}
}
