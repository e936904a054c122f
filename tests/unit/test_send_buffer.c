/* Unit tests for proxy/send_buffer: which send buffer a client socket gets. */
#include "proxy/send_buffer.h"
#include "test_util.h"

static void test_configured_size_wins(void)
{
    ASSERT_UEQ(send_buffer_for_client(0, 30), 0);            /* 0: autotuning, however near */
    ASSERT_UEQ(send_buffer_for_client(512 << 10, 30), 512 << 10);
    ASSERT_UEQ(send_buffer_for_client(512 << 10, 50000), 512 << 10); /* fixed means fixed, however far */
}

static void test_auto_follows_the_round_trip(void)
{
    /* Loopback and LAN clients: the floor. */
    ASSERT_UEQ(send_buffer_for_client(SEND_BUFFER_AUTO, 1), SEND_BUFFER_AUTO_MIN);
    ASSERT_UEQ(send_buffer_for_client(SEND_BUFFER_AUTO, 200), SEND_BUFFER_AUTO_MIN);
    /* 1 ms: 10 Gbit/s has 1.25 MB in flight. */
    ASSERT_UEQ(send_buffer_for_client(SEND_BUFFER_AUTO, 1000), 1250000);
    /* Just below and at the point where autotuning reaches as far. */
    ASSERT_UEQ(send_buffer_for_client(SEND_BUFFER_AUTO, 1677), 1677u * 1250u);
    ASSERT_UEQ(send_buffer_for_client(SEND_BUFFER_AUTO, 1678), 0);
    /* A far client keeps autotuning. */
    ASSERT_UEQ(send_buffer_for_client(SEND_BUFFER_AUTO, 80000), 0);
    /* No measurement: nothing to size by. */
    ASSERT_UEQ(send_buffer_for_client(SEND_BUFFER_AUTO, 0), 0);
    /* The largest RTT the kernel can report does not overflow into a small buffer. */
    ASSERT_UEQ(send_buffer_for_client(SEND_BUFFER_AUTO, UINT32_MAX), 0);
}

int main(void)
{
    test_configured_size_wins();
    test_auto_follows_the_round_trip();
    printf("test_send_buffer: ok\n");
    return 0;
}
