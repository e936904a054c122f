/* send_buffer: how big a client socket's send buffer should be.
 *
 * Linux autotunes a TCP send buffer up to tcp_wmem[2] (4 MiB by default), as large as the congestion
 * window asks for. For a client a few hundred microseconds away that is far more than it can ever have
 * in flight, and every byte parked there is a cold cache line the next write must fetch: on the
 * loopback benchmark a fixed 256 KiB buffer made larder's 1 MiB hits 8% cheaper in CPU (README, design).
 * A far client does need the big buffer, or its throughput is capped at buffer / RTT.
 *
 * So by default ("auto") a client gets a fixed buffer sized from the round-trip time its handshake
 * measured: what a 10 Gbit/s path has in flight at that RTT, at least 256 KiB. When that would be as
 * large as autotuning's own ceiling, the kernel keeps tuning. Pure, so the rule is unit-tested.
 */
#ifndef LARDER_SEND_BUFFER_H
#define LARDER_SEND_BUFFER_H

#include <stdint.h>

/* The configured value that selects the RTT rule (client_send_buffer auto). */
#define SEND_BUFFER_AUTO UINT64_MAX

/* The smallest fixed buffer "auto" gives. */
#define SEND_BUFFER_AUTO_MIN ((uint64_t)256 << 10)
/* From this size on "auto" leaves the socket to autotuning: the kernel doubles what SO_SNDBUF asks
 * for, so 2 MiB requested is the 4 MiB autotuning can reach anyway. */
#define SEND_BUFFER_AUTO_MAX ((uint64_t)2 << 20)
/* Bytes per microsecond of the path "auto" provisions for: 10 Gbit/s. */
#define SEND_BUFFER_AUTO_RATE 1250u

/* The SO_SNDBUF value to set on a client socket, or 0 to leave the kernel's autotuning alone.
 * configured: client_send_buffer (0: always autotune; SEND_BUFFER_AUTO: the RTT rule; else that size).
 * handshake_rtt_us: the kernel's smoothed RTT for the connection (TCP_INFO tcpi_rtt), 0 if unknown. */
uint64_t send_buffer_for_client(uint64_t configured, uint32_t handshake_rtt_us);

#endif
