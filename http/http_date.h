/* HTTP-date parsing and formatting (RFC 9110 s5.6.7), with no locale, no time zone and no libc time
 * conversion: dates are converted with our own proleptic-Gregorian day arithmetic, so the TZ
 * environment variable and setlocale() can never change a cache decision (RFC 9111 s4.2: "A cache
 * recipient MUST NOT allow local time zones to influence the calculation or comparison of an age or
 * expiration time").
 *
 * Time is int64_t seconds since 1970-01-01T00:00:00Z, leap seconds not counted (POSIX time).
 *
 * Nothing here allocates or reads a clock. Where the obsolete two-digit-year format needs "now" to
 * pick a century (RFC 9110 s5.6.7), the caller passes it.
 */
#ifndef LARDER_HTTP_DATE_H
#define LARDER_HTTP_DATE_H

#include <stddef.h>
#include <stdint.h>

#include "http/http_msg.h"

/* "Sun, 06 Nov 1994 08:49:37 GMT" is 29 characters; the buffer also holds a NUL. */
#define HTTP_DATE_LEN 29
#define HTTP_DATE_BUFSZ (HTTP_DATE_LEN + 1)

/* Parses one HTTP-date in any of the three formats a recipient MUST accept (RFC 9110 s5.6.7):
 *   IMF-fixdate   "Sun, 06 Nov 1994 08:49:37 GMT"
 *   RFC 850       "Sunday, 06-Nov-94 08:49:37 GMT"
 *   asctime       "Sun Nov  6 08:49:37 1994"
 * Names and "GMT" match case-insensitively (RFC 9111 s4.2 relaxes case for caches). A zone other than
 * GMT is invalid (RFC 9111 s4.2: SHOULD consider such a date invalid). Leading/trailing OWS is skipped;
 * anything else that does not fit the grammar, a day that does not exist (Feb 30), or an hour, minute or
 * second out of range is rejected. Second 60 (a leap second) reads as 59: the nearest representable time
 * not later than the value (RFC 9111 s4.2). The weekday is checked to be a weekday name but not checked
 * against the date (RFC 9110 s5.6.7 encourages robustness).
 *
 * Two-digit years (RFC 850 form, and the RFC 822 form "Sun, 06 Nov 94 ...") take the century that puts
 * them at most 50 years after `now` (RFC 9110 s5.6.7: a date more than 50 years in the future means
 * the most recent past year with those last two digits).
 *
 * Returns 0 and sets *out, or -EINVAL. Callers use -EINVAL as RFC 9111 s5.3 says for Expires: an
 * invalid date means "already expired". */
int http_date_parse(const char *s, size_t len, int64_t now, int64_t *out);

/* Writes `t` as IMF-fixdate (RFC 9110 s5.6.7: senders MUST generate this format) into buf, NUL-terminated.
 * Returns HTTP_DATE_LEN, or -ERANGE when the year is outside 0000..9999. */
int http_date_format(int64_t t, char buf[HTTP_DATE_BUFSZ]);

/* The value of a date field of a message (Date, Expires, Last-Modified, If-Modified-Since...).
 * Returns 0 and sets *out; -ENOENT when the field is absent; -EINVAL when the value is not a valid
 * HTTP-date or there are several field lines that disagree (RFC 9111 s4.2.1 allows treating duplicates
 * as invalid; RFC 9110 s13.1.3 ignores an If-Modified-Since with more than one member). */
int http_date_field(const struct http_msg *m, const char *name, int64_t now, int64_t *out);

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12, day 1..31; not validated). */
int64_t http_date_days_from_civil(int64_t year, unsigned month, unsigned day);
/* Inverse of http_date_days_from_civil(). */
void http_date_civil_from_days(int64_t days, int64_t *year, unsigned *month, unsigned *day);

#endif
