package web

import (
	"context"
	"io"
	"net/http"

	"github.com/a-h/templ"

	domain "jetfleet/internal/media"
	"jetfleet/web/media"
)

// mountMedia serves the Media pipeline's pages at /media (signed in). Its
// upload route is the one page route exempt from limitForms: it takes the
// file as the body, with its own size limit and deadline.
func mountMedia(ctx context.Context, s *Server, mux *http.ServeMux) error {
	if s.deps.BlobStore == nil {
		mux.Handle("GET /media", templ.Handler(productPage("Media", mediaUnavailable())))
		return nil
	}
	items, err := domain.Open(ctx, s.deps.JS, s.deps.BlobStore)
	if err != nil {
		return err
	}
	media.New(media.Deps{
		Items: items, Blobs: s.deps.BlobStore, Log: s.deps.Log.With("product", "media"),
		MaxUploadBytes: s.cfg.MediaMaxUploadBytes,
		Wrap:           func(body templ.Component) templ.Component { return productPage("Media", body) },
	}).Routes(mux, s.signedIn)
	return nil
}

func mediaUnavailable() templ.Component {
	return templ.ComponentFunc(func(ctx context.Context, w io.Writer) error {
		_, err := io.WriteString(w, "<h1>Media</h1><p>Media needs blob storage, and this edge has none configured.</p>")
		return err
	})
}
