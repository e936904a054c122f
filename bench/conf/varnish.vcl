vcl 4.1;
# Varnish as a reverse proxy in front of the origin (clients send origin-form requests).
# Storage: -s malloc,256m (RAM, Varnish's default kind); one thread pool (see bench/lib/products.py).

backend origin {
    .host = "127.0.0.1";
    .port = "@@ORIGIN_PORT@@";
}

sub vcl_backend_response {
    # Keep expired objects for an hour so they can be revalidated with If-None-Match /
    # If-Modified-Since (Varnish does that only for objects inside their keep period).
    # A max-age=0 response would otherwise be marked uncacheable by the builtin VCL, and
    # "every request revalidates" (scenario 3) could not happen at all.
    if (beresp.ttl <= 0s && (beresp.http.ETag || beresp.http.Last-Modified)) {
        set beresp.ttl = 0.001s;
    }
    set beresp.keep = 1h;
    # No grace: like the other caches (RFC 9111 s4.2.4), never serve a stale object without
    # revalidating it first. (default_grace is also set to 0 on the command line.)
    set beresp.grace = 0s;
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
