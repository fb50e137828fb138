/* hub_flood.c — a member that keeps sending far over its rate is cut off at
 * the transport and kept out for a while.
 *
 * Why: the rate limit (admit__rate_check) refuses a flood before decoding it,
 * but libzmq's ROUTER cannot stop reading one peer, so the hub still
 * receives and decrypts every byte the flooder sends, on the cores the
 * other members share. Measured, that cost the honest members' p99 25×.
 * Closing the flooder's TCP connection and refusing its key in the ZAP
 * handshake for flood_ban_seconds stops that work.
 *
 * The rule: each refused envelope adds one to the member's "flood debt",
 * which drains at its rate (rate_msgs a second). A member whose debt passes
 * flood_cutoff_seconds × rate_msgs (5 s worth by default) has kept sending
 * over its rate for long after being told to slow down: a single burst of
 * a few times its rate does not get there, a sustained flood does within a
 * fraction of a second. The SDK never resends on RATE_LIMITED. */
#include "hub_core_internal.h"

#include <sys/socket.h>

/* The member's connection, as libzmq reports it for the message being
 * handled; remembered so that a cut-off closes the right socket. */
void flood__seen(hub_server_t *self, core__member_t *m)
{
    m->conn_fd = self->current_fd;
}

bool flood__banned(const hub_server_t *self, const core__member_t *m, uint64_t now)
{
    (void)self;
    return m->banned_until_mono_us > now;
}

void flood__note(hub_server_t *self, core__member_t *m, size_t refused)
{
    if (!self->cfg.flood_factor || !refused)
        return;
    uint64_t now = hub_monotonic_us();
    double rate = m->rate_msgs ? (double)m->rate_msgs : 1000.0;
    if (m->flood_debt_mono_us) {
        double drained = (double)(now - m->flood_debt_mono_us) / 1e6 * rate;
        m->flood_debt = m->flood_debt > drained ? m->flood_debt - drained : 0.0;
    }
    m->flood_debt_mono_us = now;
    m->flood_debt += (double)refused;
    if (m->flood_debt <= rate * self->cfg.flood_factor)
        return;

    /* Cut off: the socket is shut down (libzmq then closes it and drops
     * the pipe), the member is offline, and its key is refused until the
     * ban ends. What it had queued stays in the store. */
    m->banned_until_mono_us = now + (uint64_t)self->cfg.flood_ban_s * 1000000u;
    m->flood_debt = 0.0;
    bool closed = false;
    if (m->conn_fd >= 0)
        closed = shutdown(m->conn_fd, SHUT_RDWR) == 0;
    m->conn_fd = -1;
    send__blocked_drop(m);
    m->online = false;
    self->stats.members_cut_off++;
    char why[200];
    snprintf(why, sizeof why,
             "cut off for flooding: kept sending over its rate of %.0f envelopes a second; "
             "key refused for %u s",
             rate, self->cfg.flood_ban_s);
    members__audit_q(self, HUB_AUDIT_MEMBER_REFUSED, NULL, 0, m->id, NULL, NULL, why);
    HUB_WARN("router", "member flooding: disconnected, its key refused for a while",
             "member=%s rate_msgs=%.0f ban_s=%u connection_closed=%s", m->id, rate,
             self->cfg.flood_ban_s, closed ? "yes" : "no");
}
