#include "http/http_date.h"

#include <errno.h>
#include <string.h>

/* Calendar arithmetic on a year that starts on 1 March, so the leap day is the last day of the year and
 * month lengths follow a fixed 5-month pattern (31 30 31 30 31 | 31 30 31 30 31 | 31 28/29). Years are
 * grouped in 400-year eras of exactly 146097 days, which makes the conversion exact for any year,
 * including those before 1970, without loops or tables. */
int64_t http_date_days_from_civil(int64_t year, unsigned month, unsigned day)
{
    int64_t y = year - (month <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t year_of_era = y - era * 400;                                  /* 0..399 */
    unsigned march_month = month > 2 ? month - 3 : month + 9;             /* 0 = March .. 11 = February */
    int64_t day_of_year = (153 * march_month + 2) / 5 + (int64_t)day - 1; /* 0..365 */
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468; /* 719468 = days from 0000-03-01 to 1970-01-01 */
}

void http_date_civil_from_days(int64_t days, int64_t *year, unsigned *month, unsigned *day)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t day_of_era = z - era * 146097;                                                                   /* 0..146096 */
    int64_t year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365; /* 0..399 */
    int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    int64_t march_month = (5 * day_of_year + 2) / 153;
    *day = (unsigned)(day_of_year - (153 * march_month + 2) / 5 + 1);
    *month = (unsigned)(march_month < 10 ? march_month + 3 : march_month - 9);
    *year = year_of_era + era * 400 + (*month <= 2);
}

static const char short_days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const long_days[7] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned char len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* A cursor over the input; every matcher advances it only on success. */
struct cur {
    const char *p, *end;
};

static int eat_ci(struct cur *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n) return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)c->p[i]) != lower((unsigned char)word[i])) return 0;
    c->p += n;
    return 1;
}

static int eat_char(struct cur *c, char ch)
{
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static int is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Between min and max digits; returns the digit count (0 on failure) and the value. */
static int eat_digits(struct cur *c, int min, int max, int *value)
{
    int n = 0, v = 0;
    while (n < max && c->p + n < c->end && is_digit(c->p[n])) {
        v = v * 10 + (c->p[n] - '0');
        n++;
    }
    if (n < min) return 0;
    c->p += n;
    *value = v;
    return n;
}

/* A day name, short or long; returns 1 for short, 2 for long, 0 for none. Long names are tried first
 * because every long name starts with its short form. */
static int eat_day_name(struct cur *c)
{
    for (int i = 0; i < 7; i++)
        if (eat_ci(c, long_days[i])) return 2;
    for (int i = 0; i < 7; i++)
        if (eat_ci(c, short_days[i])) return 1;
    return 0;
}

static int eat_month(struct cur *c, unsigned *month)
{
    for (unsigned i = 0; i < 12; i++)
        if (eat_ci(c, months[i])) {
            *month = i + 1;
            return 1;
        }
    return 0;
}

/* time-of-day = hour ":" minute ":" second, each 2DIGIT. */
static int eat_time(struct cur *c, int *h, int *m, int *s)
{
    return eat_digits(c, 2, 2, h) && eat_char(c, ':') && eat_digits(c, 2, 2, m) && eat_char(c, ':') && eat_digits(c, 2, 2, s);
}

/* RFC 9110 s5.6.7: a two-digit year more than 50 years in the future is the most recent past year with
 * the same last two digits. The answer is the largest year <= now_year + 50 ending in those digits. */
static int64_t expand_two_digit_year(int yy, int64_t now)
{
    int64_t now_year;
    unsigned mo, d;
    int64_t days = now >= 0 ? now / 86400 : -((-now + 86399) / 86400);
    http_date_civil_from_days(days, &now_year, &mo, &d);
    int64_t limit = now_year + 50;
    int64_t back = ((limit - yy) % 100 + 100) % 100;
    return limit - back;
}

static void skip_ows(struct cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
    while (c->end > c->p && (c->end[-1] == ' ' || c->end[-1] == '\t'))
        c->end--;
}

struct date_parts {
    int day, year, h, mi, sec, ydigits;
    unsigned month;
};

static int digit2(const char *p, int *v)
{
    if (!is_digit(p[0]) || !is_digit(p[1])) return 0;
    *v = (p[0] - '0') * 10 + (p[1] - '0');
    return 1;
}

/* IMF-fixdate exactly as senders must write it (RFC 9110 s5.6.7), "Sun, 06 Nov 1994 08:49:37 GMT",
 * read by position: nearly every date a cache sees, several per hit. 1 when s is that form; 0 sends
 * it to the general parser, which also accepts it (and the obsolete forms, and other cases). */
static int parse_fixdate_exact(const char *s, size_t len, struct date_parts *d)
{
    if (len != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[19] != ':' ||
        s[22] != ':' || s[25] != ' ' || memcmp(s + 26, "GMT", 3) != 0)
        return 0;
    int day_ok = 0;
    for (int i = 0; i < 7 && !day_ok; i++)
        day_ok = memcmp(s, short_days[i], 3) == 0;
    d->month = 0;
    for (unsigned i = 0; i < 12 && d->month == 0; i++)
        if (memcmp(s + 8, months[i], 3) == 0) d->month = i + 1;
    int y1, y2;
    if (!day_ok || d->month == 0 || !digit2(s + 5, &d->day) || !digit2(s + 12, &y1) || !digit2(s + 14, &y2) ||
        !digit2(s + 17, &d->h) || !digit2(s + 20, &d->mi) || !digit2(s + 23, &d->sec))
        return 0;
    d->year = y1 * 100 + y2;
    d->ydigits = 4;
    return 1;
}

/* The three forms of RFC 9110 s5.6.7, names in any case, surrounding whitespace ignored. */
static int parse_general(const char *s, size_t len, struct date_parts *d)
{
    struct cur c = {s, s + len};
    skip_ows(&c);
    int name = eat_day_name(&c);
    if (name == 0) return 0;
    if (name == 1 && eat_char(&c, ' ')) {
        /* asctime-date = day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day SP year */
        if (!eat_month(&c, &d->month) || !eat_char(&c, ' ')) return 0;
        if (eat_char(&c, ' ')) {
            if (!eat_digits(&c, 1, 1, &d->day)) return 0;
        } else if (!eat_digits(&c, 2, 2, &d->day)) {
            return 0;
        }
        if (!eat_char(&c, ' ') || !eat_time(&c, &d->h, &d->mi, &d->sec) || !eat_char(&c, ' ')) return 0;
        d->ydigits = eat_digits(&c, 4, 4, &d->year);
        if (d->ydigits == 0) return 0;
    } else {
        /* IMF-fixdate  = day-name "," SP 2DIGIT SP month SP 4DIGIT SP time-of-day SP "GMT"
         * rfc850-date  = day-name-l "," SP 2DIGIT "-" month "-" 2DIGIT SP time-of-day SP "GMT"
         * The separator after the day tells them apart, whatever the length of the day name, and a
         * two-digit year is also accepted in the first form (RFC 822 style, still seen in the wild). */
        if (!eat_char(&c, ',') || !eat_char(&c, ' ') || !eat_digits(&c, 2, 2, &d->day)) return 0;
        char sep = c.p < c.end ? *c.p : 0;
        if (sep != ' ' && sep != '-') return 0;
        c.p++;
        if (!eat_month(&c, &d->month) || !eat_char(&c, sep)) return 0;
        d->ydigits = eat_digits(&c, 2, 4, &d->year);
        if (d->ydigits != 2 && d->ydigits != 4) return 0;
        if (!eat_char(&c, ' ') || !eat_time(&c, &d->h, &d->mi, &d->sec) || !eat_char(&c, ' ') || !eat_ci(&c, "GMT"))
            return 0;
    }
    return c.p == c.end;
}

int http_date_parse(const char *s, size_t len, int64_t now, int64_t *out)
{
    if (s == NULL) return -EINVAL;
    struct date_parts d = {0};
    if (!parse_fixdate_exact(s, len, &d) && !parse_general(s, len, &d)) return -EINVAL;
    int64_t y = d.ydigits == 2 ? expand_two_digit_year(d.year, now) : d.year;
    if (d.day < 1 || (unsigned)d.day > days_in_month(y, d.month) || d.h > 23 || d.mi > 59 || d.sec > 60) return -EINVAL;
    if (d.sec == 60) d.sec = 59; /* RFC 9111 s4.2: the nearest representable time not later than the value */
    *out = http_date_days_from_civil(y, d.month, (unsigned)d.day) * 86400 + d.h * 3600 + d.mi * 60 + d.sec;
    return 0;
}

static void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

int http_date_format(int64_t t, char buf[HTTP_DATE_BUFSZ])
{
    /* 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59Z. Checked before any arithmetic: days * 86400 below
     * overflows int64_t for times near INT64_MIN. */
    if (t < INT64_C(-62167219200) || t > INT64_C(253402300799)) return -ERANGE;
    /* Floor division, so times before 1970 land on the right day. */
    int64_t days = t >= 0 ? t / 86400 : -((-(t + 1)) / 86400) - 1;
    int64_t secs = t - days * 86400;
    int64_t year;
    unsigned month, day;
    http_date_civil_from_days(days, &year, &month, &day);
    if (year < 0 || year > 9999) return -ERANGE;
    int weekday = (int)(((days % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
    /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    memcpy(buf, short_days[weekday], 3);
    buf[3] = ',';
    buf[4] = ' ';
    put2(buf + 5, day);
    buf[7] = ' ';
    memcpy(buf + 8, months[month - 1], 3);
    buf[11] = ' ';
    put2(buf + 12, (unsigned)(year / 100));
    put2(buf + 14, (unsigned)(year % 100));
    buf[16] = ' ';
    put2(buf + 17, (unsigned)(secs / 3600));
    buf[19] = ':';
    put2(buf + 20, (unsigned)(secs / 60 % 60));
    buf[22] = ':';
    put2(buf + 23, (unsigned)(secs % 60));
    memcpy(buf + 25, " GMT", 5); /* with the NUL */
    return HTTP_DATE_LEN;
}

int http_date_field(const struct http_msg *m, const char *name, int64_t now, int64_t *out)
{
    const struct http_field *f = http_msg_find(m, name);
    if (f == NULL) return -ENOENT;
    int64_t first;
    if (http_date_parse(f->value, f->value_len, now, &first) < 0) return -EINVAL;
    for (f = http_msg_find_next(m, f); f != NULL; f = http_msg_find_next(m, f)) {
        int64_t t;
        if (http_date_parse(f->value, f->value_len, now, &t) < 0 || t != first) return -EINVAL;
    }
    *out = first;
    return 0;
}
