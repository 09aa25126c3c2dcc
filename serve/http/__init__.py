"""The HTTP API: app, routes, dependencies, schemas, middleware, OIDC and the web pages."""
