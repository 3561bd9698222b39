// The chat client; replaced by the full page.
