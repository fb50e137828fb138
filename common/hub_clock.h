/* hub_clock — the two clocks everything here reads: the wall clock (times
 * that are stored, signed or shown) and the monotonic clock (timeouts and
 * intervals), in microseconds.
 *
 * Its own object, apart from hub_wire: a plugin that reads the clock and
 * links hub_common statically (through lth_domain) must not pull in
 * hub_wire's uses of lth.proto's descriptors, which hub-adapter already
 * has (two copies are an ODR violation that AddressSanitizer stops on).
 */
#ifndef HUB_CLOCK_H
#define HUB_CLOCK_H

#include <stdint.h>

uint64_t hub_now_us(void);       /* wall clock, microseconds since the Unix epoch */
uint64_t hub_monotonic_us(void); /* monotonic clock, microseconds */

#endif
