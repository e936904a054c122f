/* send_buffer: the client socket send buffer rule; see send_buffer.h for why. */
#include "proxy/send_buffer.h"

uint64_t send_buffer_for_client(uint64_t configured, uint32_t handshake_rtt_us)
{
    if (configured != SEND_BUFFER_AUTO)
        return configured;
    if (handshake_rtt_us == 0)
        return 0; /* no measurement: nothing to size by */
    /* The kernel's doubling of the requested size leaves room for twice the bandwidth-delay product,
     * which is the headroom a congestion window needs to grow past it. */
    uint64_t in_flight = (uint64_t)handshake_rtt_us * SEND_BUFFER_AUTO_RATE;
    if (in_flight >= SEND_BUFFER_AUTO_MAX)
        return 0;
    return in_flight < SEND_BUFFER_AUTO_MIN ? SEND_BUFFER_AUTO_MIN : in_flight;
}
