/* Unit tests for proxy/flight: who leads, who follows, and which flights a request may not follow.
 *
 * The table is plain data under one mutex, so these run on one thread: the wake-ups are counted by a
 * callback instead of waking a loop.
 */
#include "proxy/flight.h"
#include "test_util.h"

#include <string.h>

static struct store_key key_of(uint8_t fill)
{
    struct store_key k;
    memset(k.b, fill, sizeof(k.b));
    return k;
}

/* The joiners' clock in these tests: within a minute of every response published (publish()). */
#define NOW 1005

static void count_wake(void *arg)
{
    (*(int *)arg)++;
}

static void publish(struct flight *f, int64_t response_time, uint64_t body_id, uint64_t length)
{
    static const char head[] = "ETag: \"x\"\r\n";
    ASSERT_EQ(flight_set_head(f, 200, head, sizeof(head) - 1, "", 0, response_time - 1, response_time, response_time + 60,
                              body_id, 1, length),
              0);
}

static void test_leader_then_followers(void)
{
    struct flight_table t;
    ASSERT_EQ(flight_table_init(&t), 0);
    struct store_key k = key_of(1);
    int leader = -1;
    struct flight *a = flight_join(&t, &k, 0, NOW, &leader);
    ASSERT(a != NULL);
    ASSERT_EQ(leader, 1);
    struct flight *b = flight_join(&t, &k, 0, NOW, &leader);
    ASSERT(b == a);
    ASSERT_EQ(leader, 0);

    /* Another key is another flight. */
    struct store_key k2 = key_of(2);
    struct flight *c = flight_join(&t, &k2, 0, NOW, &leader);
    ASSERT(c != a);
    ASSERT_EQ(leader, 1);

    int wakes = 0;
    ASSERT_EQ(flight_watch(a, count_wake, &wakes), 0);
    ASSERT_EQ(flight_has_followers(a), 1);
    publish(a, 1000, 7, 10);
    ASSERT_EQ(wakes, 1);
    flight_progress(a, 4);
    ASSERT_EQ(wakes, 2);
    flight_progress(a, 4); /* no news, no wake-up */
    ASSERT_EQ(wakes, 2);
    struct flight_view v;
    flight_view(a, &v);
    ASSERT_EQ(v.state, FLIGHT_STREAMING);
    ASSERT_UEQ(v.readable, 4);
    ASSERT_UEQ(v.body_id, 7);

    ASSERT_EQ(v.upstream_done, 0);
    flight_upstream_done(a); /* the whole response is in; its commit is queued */
    flight_view(a, &v);
    ASSERT_EQ(v.upstream_done, 1);
    ASSERT_EQ(v.state, FLIGHT_STREAMING); /* still joinable until the commit */
    struct flight *late = flight_join(&t, &k, 0, NOW, &leader);
    ASSERT(late == a);
    ASSERT_EQ(leader, 0);
    flight_release(late);
    flight_progress(a, 10);
    flight_done(a);
    flight_view(a, &v);
    ASSERT_EQ(v.state, FLIGHT_DONE);
    ASSERT_EQ(v.complete, 1);
    /* Done and unregistered: the next request leads a new flight. */
    struct flight *d = flight_join(&t, &k, 0, NOW, &leader);
    ASSERT(d != a);
    ASSERT_EQ(leader, 1);
    flight_unwatch(a, &wakes);
    ASSERT_EQ(flight_has_followers(a), 0);

    flight_fail(c);
    flight_fail(d);
    flight_release(a);
    flight_release(b);
    flight_release(c);
    flight_release(d);
    flight_table_destroy(&t);
}

/* RFC 9111 s4 and s4.2: a request arriving while the response is on its way is combined into the
 * forward request whatever that response's freshness; once the response is complete it is a stored
 * response to newcomers, reusable only while fresh and only by a request that allows reuse. */
static void test_complete_flight_joinable_only_while_fresh(void)
{
    struct flight_table t;
    ASSERT_EQ(flight_table_init(&t), 0);
    /* done_how 0: the whole response is in and its commit queued; 1: DONE (a 304's update queued) */
    for (int done_how = 0; done_how < 2; done_how++) {
        struct store_key k = key_of(40 + done_how);
        int leader = -1;
        struct flight *f = flight_join(&t, &k, 0, NOW, &leader);
        ASSERT_EQ(leader, 1);
        static const char head[] = "ETag: \"z\"\r\n";
        /* Fresh until NOW + 2 (say max-age=2 received at NOW). */
        ASSERT_EQ(flight_set_head(f, 200, head, sizeof(head) - 1, "", 0, NOW, NOW, NOW + 2, 5, 1, 5), 0);
        /* Streaming: anyone joins, even a request that forbids reuse, even after fresh_until. */
        struct flight *j = flight_join(&t, &k, 0, FLIGHT_NO_REUSE, &leader);
        ASSERT(j == f && leader == 0);
        flight_release(j);
        j = flight_join(&t, &k, 0, NOW + 5, &leader);
        ASSERT(j == f && leader == 0);
        flight_release(j);
        flight_progress(f, 5);
        if (done_how == 0)
            flight_upstream_done(f);
        else
            flight_complete(f);
        /* Complete: fresh for a newcomer at NOW + 1 ... */
        j = flight_join(&t, &k, 0, NOW + 1, &leader);
        ASSERT(j == f && leader == 0);
        flight_release(j);
        /* ... not at NOW + 2 (current age 2 is not below a lifetime of 2), nor for no-cache. */
        struct flight *late = flight_join(&t, &k, 0, NOW + 2, &leader);
        ASSERT(late != f && leader == 1);
        struct flight *nocache = flight_join(&t, &k, 0, FLIGHT_NO_REUSE, &leader);
        ASSERT(nocache == late && leader == 0); /* the new flight is still fetching: it combines */
        flight_release(nocache);
        flight_fail(late);
        flight_release(late);
        flight_unregister(f);
        flight_release(f);
    }
    /* A response published as never reusable (max-age=0, or no-cache): once complete, nobody joins. */
    struct store_key k = key_of(50);
    int leader = -1;
    struct flight *f = flight_join(&t, &k, 0, NOW, &leader);
    ASSERT_EQ(flight_set_head(f, 200, "", 0, "", 0, NOW, NOW, 0, 6, 1, 0), 0);
    flight_upstream_done(f);
    struct flight *n = flight_join(&t, &k, 0, NOW, &leader);
    ASSERT(n != f && leader == 1);
    flight_fail(n);
    flight_release(n);
    flight_unregister(f);
    flight_release(f);
    flight_table_destroy(&t);
}

/* A fill that is complete but not yet seen committed stays joinable for a plain miss; a request that
 * holds that very response as stale must not follow it (it would be served stale without
 * validation) and leads a conditional fetch of its own, which later joiners then find. */
static void test_stale_holder_skips_the_same_response(void)
{
    struct flight_table t;
    ASSERT_EQ(flight_table_init(&t), 0);
    struct store_key k = key_of(3);
    int leader = -1;
    struct flight *fill = flight_join(&t, &k, 0, NOW, &leader);
    ASSERT_EQ(leader, 1);
    publish(fill, 1000, 9, 5);
    flight_progress(fill, 5);
    flight_complete(fill); /* DONE, still registered until the store has it */

    struct flight *miss = flight_join(&t, &k, 0, NOW, &leader);
    ASSERT(miss == fill);
    ASSERT_EQ(leader, 0);

    /* Holding the stored copy of that response (response_time 1000), now stale. */
    struct flight *reval = flight_join(&t, &k, 1000, NOW, &leader);
    ASSERT(reval != fill);
    ASSERT_EQ(leader, 1);
    /* An older stale copy: the registered fill is newer, following it is fine... but the newest
     * flight is found first, and it is still fetching, so its response is newer than any stored one. */
    struct flight *later = flight_join(&t, &k, 1000, NOW, &leader);
    ASSERT(later == reval);
    ASSERT_EQ(leader, 0);
    struct flight *older_copy = flight_join(&t, &k, 999, NOW, &leader);
    ASSERT(older_copy == reval);
    ASSERT_EQ(leader, 0);

    /* Once the revalidation has its (newer) response, a holder of the old copy follows it. */
    publish(reval, 1011, 9, 5);
    struct flight *after = flight_join(&t, &k, 1000, NOW, &leader);
    ASSERT(after == reval);
    ASSERT_EQ(leader, 0);
    /* But one that already holds the refreshed copy and still may not use it (no-cache) does not. */
    struct flight *nocache = flight_join(&t, &k, 1011, NOW, &leader);
    ASSERT(nocache != reval && nocache != fill);
    ASSERT_EQ(leader, 1);

    /* Unregistering the older fill leaves the newer flights in the chain. */
    flight_unregister(fill);
    struct flight *again = flight_join(&t, &k, 0, NOW, &leader);
    ASSERT(again == nocache);
    ASSERT_EQ(leader, 0);

    flight_fail(nocache);
    flight_done(reval);
    struct flight *all[] = {fill, miss, reval, later, older_copy, after, nocache, again};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        flight_release(all[i]);
    flight_table_destroy(&t);
}

/* Failed and not-shared flights are never joined. */
static void test_failed_and_not_shared_are_left(void)
{
    struct flight_table t;
    ASSERT_EQ(flight_table_init(&t), 0);
    struct store_key k = key_of(4);
    int leader = -1;
    struct flight *a = flight_join(&t, &k, 0, NOW, &leader);
    struct flight *f2 = flight_join(&t, &k, 0, NOW, &leader);
    ASSERT(f2 == a);
    int wakes = 0;
    ASSERT_EQ(flight_watch(a, count_wake, &wakes), 0);
    flight_not_shared(a);
    ASSERT_EQ(wakes, 1);
    struct flight_view v;
    flight_view(a, &v);
    ASSERT_EQ(v.state, FLIGHT_NOT_SHARED);
    struct flight *b = flight_join(&t, &k, 0, NOW, &leader);
    ASSERT(b != a);
    ASSERT_EQ(leader, 1);
    flight_fail(b);
    struct flight *c = flight_join(&t, &k, 0, NOW, &leader);
    ASSERT(c != b && c != a);
    ASSERT_EQ(leader, 1);
    flight_fail(c);
    flight_unwatch(a, &wakes);
    flight_release(a);
    flight_release(f2);
    flight_release(b);
    flight_release(c);
    flight_table_destroy(&t);
}

int main(void)
{
    test_leader_then_followers();
    test_stale_holder_skips_the_same_response();
    test_complete_flight_joinable_only_while_fresh();
    test_failed_and_not_shared_are_left();
    printf("test_flight: ok\n");
    return 0;
}
