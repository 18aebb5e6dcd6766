"""The HTTP edge: app factory, middleware, declared routes, OpenAPI, health."""
