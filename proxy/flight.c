#include "proxy/flight.h"

#include "store/store_writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct flight_watcher {
    void (*wake)(void *arg);
    void *arg;
    unsigned count;
};

struct flight {
    struct flight_table *table;
    struct flight *next; /* bucket chain, while registered */
    unsigned refs;
    int registered;
    struct store_key pkey;
    struct flight_view v; /* head strings below are owned here */
    char *head;
    char *variant;
    struct flight_watcher *watchers;
    size_t n_watchers, cap_watchers;
    void (*leader_wake)(void *arg); /* told when a follower arrives (flight_set_leader_wake) */
    void *leader_arg;
};

static size_t bucket_of(const struct store_key *k)
{
    uint64_t h;
    memcpy(&h, k->b, sizeof(h)); /* a SHA-256 prefix: already uniform */
    return (size_t)(h % FLIGHT_BUCKETS);
}

int flight_table_init(struct flight_table *t)
{
    memset(t, 0, sizeof(*t));
    t->buckets = calloc(FLIGHT_BUCKETS, sizeof(*t->buckets));
    if (t->buckets == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t->buckets);
        t->buckets = NULL;
        return -EINVAL;
    }
    return 0;
}

void flight_table_destroy(struct flight_table *t)
{
    pthread_mutex_destroy(&t->lock);
    free(t->buckets);
    t->buckets = NULL;
}

/* lock held */
static void wake_all(struct flight *f)
{
    for (size_t i = 0; i < f->n_watchers; i++)
        f->watchers[i].wake(f->watchers[i].arg);
}

/* lock held */
static void unregister_locked(struct flight *f)
{
    if (!f->registered)
        return;
    struct flight **pp = &f->table->buckets[bucket_of(&f->pkey)];
    while (*pp != NULL && *pp != f)
        pp = &(*pp)->next;
    if (*pp == f)
        *pp = f->next;
    f->registered = 0;
    f->refs--; /* the table's reference; the caller still holds one, so this never reaches zero */
}

/* lock held: whether a joiner that may not use a stored response of stale_response_time, arriving at
 * reuse_at, can take f's (flight_join) */
static int joinable_locked(const struct flight *f, int64_t stale_response_time, int64_t reuse_at)
{
    if (f->v.state == FLIGHT_FETCHING)
        return 1; /* its response is still to come, hence newer */
    if (f->v.state != FLIGHT_STREAMING && f->v.state != FLIGHT_DONE)
        return 0;
    if (stale_response_time != 0 && f->v.response_time <= stale_response_time)
        return 0;
    if (f->v.state == FLIGHT_DONE || f->v.upstream_done)
        return reuse_at != FLIGHT_NO_REUSE && reuse_at < f->v.fresh_until;
    return 1;
}

struct flight *flight_join(struct flight_table *t, const struct store_key *pkey, int64_t stale_response_time,
                           int64_t reuse_at, int *leader)
{
    pthread_mutex_lock(&t->lock);
    for (struct flight *f = t->buckets[bucket_of(pkey)]; f != NULL; f = f->next) {
        if (memcmp(f->pkey.b, pkey->b, sizeof(pkey->b)) == 0 && joinable_locked(f, stale_response_time, reuse_at)) {
            f->refs++;
            t->joined++;
            pthread_mutex_unlock(&t->lock);
            *leader = 0;
            return f;
        }
    }
    struct flight *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        pthread_mutex_unlock(&t->lock);
        return NULL;
    }
    f->table = t;
    f->pkey = *pkey;
    f->refs = 2; /* the table's and the leader's */
    f->registered = 1;
    size_t b = bucket_of(pkey);
    f->next = t->buckets[b];
    t->buckets[b] = f;
    t->created++;
    pthread_mutex_unlock(&t->lock);
    *leader = 1;
    return f;
}

void flight_ref(struct flight *f)
{
    pthread_mutex_lock(&f->table->lock);
    f->refs++;
    pthread_mutex_unlock(&f->table->lock);
}

void flight_release(struct flight *f)
{
    if (f == NULL)
        return;
    struct flight_table *t = f->table;
    pthread_mutex_lock(&t->lock);
    unsigned left = --f->refs;
    pthread_mutex_unlock(&t->lock);
    if (left > 0)
        return;
    free(f->head);
    free(f->variant);
    free(f->watchers);
    free(f);
}

int flight_watch(struct flight *f, void (*wake)(void *arg), void *arg)
{
    pthread_mutex_lock(&f->table->lock);
    for (size_t i = 0; i < f->n_watchers; i++) {
        if (f->watchers[i].arg == arg) {
            f->watchers[i].count++;
            if (f->leader_wake != NULL)
                f->leader_wake(f->leader_arg);
            pthread_mutex_unlock(&f->table->lock);
            return 0;
        }
    }
    if (f->n_watchers == f->cap_watchers) {
        size_t cap = f->cap_watchers ? f->cap_watchers * 2 : 4;
        struct flight_watcher *w = realloc(f->watchers, cap * sizeof(*w));
        if (w == NULL) {
            pthread_mutex_unlock(&f->table->lock);
            return -ENOMEM;
        }
        f->watchers = w;
        f->cap_watchers = cap;
    }
    f->watchers[f->n_watchers++] = (struct flight_watcher){wake, arg, 1};
    if (f->leader_wake != NULL)
        f->leader_wake(f->leader_arg);
    pthread_mutex_unlock(&f->table->lock);
    return 0;
}

void flight_set_leader_wake(struct flight *f, void (*wake)(void *arg), void *arg)
{
    pthread_mutex_lock(&f->table->lock);
    f->leader_wake = wake;
    f->leader_arg = arg;
    pthread_mutex_unlock(&f->table->lock);
}

void flight_unwatch(struct flight *f, void *arg)
{
    pthread_mutex_lock(&f->table->lock);
    for (size_t i = 0; i < f->n_watchers; i++) {
        if (f->watchers[i].arg == arg) {
            if (--f->watchers[i].count == 0)
                f->watchers[i] = f->watchers[--f->n_watchers];
            break;
        }
    }
    pthread_mutex_unlock(&f->table->lock);
}

int flight_has_followers(struct flight *f)
{
    pthread_mutex_lock(&f->table->lock);
    int n = f->n_watchers > 0;
    pthread_mutex_unlock(&f->table->lock);
    return n;
}

void flight_view(struct flight *f, struct flight_view *v)
{
    pthread_mutex_lock(&f->table->lock);
    *v = f->v;
    pthread_mutex_unlock(&f->table->lock);
}

static char *dup_bytes(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        if (n)
            memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

int flight_set_head(struct flight *f, int status, const char *head, size_t head_len, const char *variant, size_t variant_len,
                    int64_t request_time, int64_t response_time, int64_t fresh_until, uint64_t body_id, int length_known,
                    uint64_t length)
{
    char *h = dup_bytes(head, head_len);
    char *vk = dup_bytes(variant ? variant : "", variant_len);
    if (h == NULL || vk == NULL) {
        free(h);
        free(vk);
        return -ENOMEM;
    }
    pthread_mutex_lock(&f->table->lock);
    f->head = h;
    f->variant = vk;
    f->v.status = status;
    f->v.head = h;
    f->v.head_len = head_len;
    f->v.variant = vk;
    f->v.variant_len = variant_len;
    f->v.request_time = request_time;
    f->v.response_time = response_time;
    f->v.fresh_until = fresh_until;
    f->v.body_id = body_id;
    f->v.length_known = length_known;
    f->v.length = length;
    f->v.state = FLIGHT_STREAMING;
    wake_all(f);
    pthread_mutex_unlock(&f->table->lock);
    return 0;
}

void flight_progress(void *arg, uint64_t readable)
{
    struct flight *f = arg;
    if (readable == STORE_FILL_PROGRESS_END) {
        flight_release(f); /* the reference taken for the hook (flight_hook_ref) */
        return;
    }
    pthread_mutex_lock(&f->table->lock);
    if (readable > f->v.readable) {
        f->v.readable = readable;
        wake_all(f);
    }
    pthread_mutex_unlock(&f->table->lock);
}

void flight_done(struct flight *f)
{
    pthread_mutex_lock(&f->table->lock);
    if (f->v.state == FLIGHT_STREAMING) {
        f->v.state = FLIGHT_DONE;
        if (!f->v.length_known) {
            f->v.length_known = 1;
            f->v.length = f->v.readable;
        }
        f->v.complete = f->v.readable == f->v.length;
    }
    unregister_locked(f);
    wake_all(f);
    pthread_mutex_unlock(&f->table->lock);
}

void flight_upstream_done(struct flight *f)
{
    pthread_mutex_lock(&f->table->lock);
    f->v.upstream_done = 1;
    pthread_mutex_unlock(&f->table->lock);
}

void flight_complete(struct flight *f)
{
    pthread_mutex_lock(&f->table->lock);
    if (f->v.state == FLIGHT_STREAMING) {
        f->v.state = FLIGHT_DONE;
        f->v.complete = f->v.length_known && f->v.readable == f->v.length;
    }
    wake_all(f);
    pthread_mutex_unlock(&f->table->lock);
}

static void end_with(struct flight *f, enum flight_state s)
{
    pthread_mutex_lock(&f->table->lock);
    if (f->v.state == FLIGHT_FETCHING || f->v.state == FLIGHT_STREAMING)
        f->v.state = s;
    unregister_locked(f);
    wake_all(f);
    pthread_mutex_unlock(&f->table->lock);
}

void flight_fail(struct flight *f)
{
    end_with(f, FLIGHT_FAILED);
}

void flight_not_shared(struct flight *f)
{
    end_with(f, FLIGHT_NOT_SHARED);
}

void flight_unregister(struct flight *f)
{
    pthread_mutex_lock(&f->table->lock);
    unregister_locked(f);
    pthread_mutex_unlock(&f->table->lock);
}
