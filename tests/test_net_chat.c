/* The chat example (examples/chat) as its users see it: the protocol, one request after
 * another, then a fan-out of 10 publishers x 2,000 messages to 50 subscribers over 4 loops
 * (fewer on Windows: NSUBS), each of which must get every message exactly once and in each
 * publisher's order, while other subscribers reset, quit or stop reading in the middle of
 * it: those get a prefix of each publisher's stream and nothing else, disturb nobody, and
 * leave no memory behind. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chat.h"
#include "harness.h"

static void quiet_log(void *ctx, weft_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)msg;
}

static void start_chat(wt_server *s, unsigned idle_ms)
{
    weft_config cfg;
    chat_config(&cfg);
    cfg.listen[0] = "tcp://127.0.0.1:0";
    if (idle_ms > 0)
        cfg.idle_timeout_ms = idle_ms;
    cfg.log_cb = quiet_log;
    assert_int_equal(wt_server_start(s, &cfg), 0);
}

/* Reads one line (without its "\n") into buf; its length, or -1 on EOF, error or timeout. */
static int read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        char ch;
        if (wt_recv_exact(fd, &ch, 1, WT_TIMEOUT_MS) != 0)
            return -1;
        if (ch == '\n')
            break;
        buf[n++] = ch;
    }
    buf[n] = '\0';
    return (int)n;
}

static void send_str(int fd, const char *s)
{
    assert_int_equal(wt_send_all(fd, s, strlen(s), WT_TIMEOUT_MS), 0);
}

static void expect_line(int fd, const char *want)
{
    char got[256];
    assert_true(read_line(fd, got, sizeof(got)) >= 0);
    assert_string_equal(got, want);
}

/* ---- the protocol, one request at a time ---- */

static void test_protocol(void **state)
{
    (void)state;
    wt_server s;
    start_chat(&s, 0);
    int a = wt_connect_tcp(s.port), b = wt_connect_tcp(s.port);
    assert_true(a >= 0 && b >= 0);

    send_str(a, "SUB news\n");
    expect_line(a, "OK");
    send_str(a, "SUB news\n");
    expect_line(a, "ERR already subscribed");
    send_str(b, "PUB news hello there\n");
    expect_line(b, "OK 1");
    expect_line(a, "MSG news hello there");
    send_str(b, "PUB sport nobody listens\n");
    expect_line(b, "OK 0");

    /* SLOW is answered by a worker, and what follows it waits for it. */
    int64_t t0 = wt_now_ms();
    send_str(b, "SLOW 200\nPUB news after the slow one\nSLOW x\n");
    expect_line(b, "OK slow");
    assert_true(wt_now_ms() - t0 >= 190);
    expect_line(b, "OK 1");
    expect_line(b, "ERR busy or bad SLOW");
    expect_line(a, "MSG news after the slow one");

    /* A line that is too long is answered, and the next one is served. */
    char longline[CHAT_MAX_LINE + 100];
    memset(longline, 'x', sizeof(longline));
    longline[sizeof(longline) - 1] = '\n';
    assert_int_equal(wt_send_all(b, longline, sizeof(longline), WT_TIMEOUT_MS), 0);
    send_str(b, "PUB news still here\n");
    expect_line(b, "ERR line too long");
    expect_line(b, "OK 1");
    expect_line(a, "MSG news still here");

    send_str(a, "UNSUB news\n");
    expect_line(a, "OK");
    send_str(a, "UNSUB news\nUNSUB nothing\nHELLO\n");
    expect_line(a, "ERR not subscribed");
    expect_line(a, "ERR not subscribed");
    expect_line(a, "ERR unknown command");
    send_str(b, "PUB news gone\n");
    expect_line(b, "OK 0");

    send_str(a, "QUIT\n");
    expect_line(a, "BYE");
    assert_int_equal(wt_recv_eof(a, WT_TIMEOUT_MS), 0);
    wt_close(a);
    wt_close(b);
    wt_server_stop(&s);
}

/* An idle client is told goodbye; one waiting on its SLOW is not idle. */
static void test_idle_goodbye(void **state)
{
    (void)state;
    wt_server s;
    start_chat(&s, 300);
    int a = wt_connect_tcp(s.port), b = wt_connect_tcp(s.port);
    assert_true(a >= 0 && b >= 0);
    send_str(b, "SLOW 900\n");
    int64_t t0 = wt_now_ms();
    expect_line(a, "BYE idle");
    assert_true(wt_now_ms() - t0 >= 200);
    assert_int_equal(wt_recv_eof(a, WT_TIMEOUT_MS), 0);
    expect_line(b, "OK slow");
    expect_line(b, "BYE idle"); /* its own idle clock again, once answered */
    assert_int_equal(wt_recv_eof(b, WT_TIMEOUT_MS), 0);
    wt_close(a);
    wt_close(b);
    wt_server_stop(&s);
}

/* ---- the fan-out ---- */

/* On Windows (WT_WINDOWS: under Wine, where every socket call is a round trip to
 * wineserver) fewer subscribers, 10 a loop still, and fewer messages each; and the second
 * phase's big messages go BIG_BATCH at a time, up to BIG_MAX. There a subscriber that stopped
 * reading is dropped only once the kernel took 2 to 3 MiB for it (Winsock cannot ask for the
 * small segments that keep the server's send buffer small) and then its queue reached the
 * mark: 3,200 to 4,300 big messages in our runs, against some 1,000 on Linux. */
#define NSUBS     (WT_WINDOWS ? 34 : 50) /* 10 to 93: every "OK n" answer is 6 bytes */
#define NTROUBLE  6                      /* 2 reset, 2 quit, 2 stop reading */
#define NPUBS     10                     /* at most 10: one digit */
#define NMSGS     (WT_WINDOWS ? 1000 : 2000)
#define ACT_AFTER 100 /* messages a troublemaker reads before it acts */
#define BIG       900 /* the second phase's message text */
/* The big messages published at once before the good subscribers catch up (32: 29 KiB, far
 * below write_high_water, so their queues stay near empty), and the most sent. */
#define BIG_BATCH (WT_WINDOWS ? 32 : 1)
#define BIG_MAX   (WT_WINDOWS ? 8000 : 4000)

enum sub_kind { SUB_GOOD, SUB_RESET, SUB_QUIT, SUB_STOP };

typedef struct sub {
    int fd;
    enum sub_kind kind;
    bool acted;  /* the troublemaker did its thing */
    bool ended;  /* EOF or reset seen, or closed by us */
    bool bye;    /* a QUIT's BYE arrived */
    bool errors; /* a line out of order, a duplicate, after BYE, or unknown */
    long got;
    int next[NPUBS]; /* the sequence number expected next from each publisher */
    int next_big;    /* ... and from the second phase's publisher */
    size_t blen;
    char buf[WT_WINDOWS ? 32768 : 4096]; /* on Windows a batch of big messages in a read */
} sub;

static sub subs[NSUBS + NTROUBLE];

typedef struct pub {
    int port, id;
    _Atomic int done;
    _Atomic int bad_replies;
} pub;

/* A publisher: its 2,000 messages in one go, while it reads the 2,000 answers. */
static void *publish(void *arg)
{
    pub *p = arg;
    int fd = wt_connect_tcp(p->port);
    char *out = malloc((size_t)NMSGS * 32);
    size_t n = 0;
    for (int i = 0; i < NMSGS; i++)
        n += (size_t)sprintf(out + n, "PUB t %d %d\n", p->id, i);
    /* "OK n" with 50 <= n <= 56: two digits, so every answer is 6 bytes. */
    char *in = malloc((size_t)NMSGS * 6);
    if (fd < 0 || wt_exchange(fd, out, n, in, (size_t)NMSGS * 6, 4 * WT_TIMEOUT_MS) != 0) {
        atomic_store(&p->bad_replies, -1);
    } else {
        for (int i = 0; i < NMSGS; i++) {
            int k = -1;
            if (sscanf(in + 6 * i, "OK %d\n", &k) != 1 || k < NSUBS || k > NSUBS + NTROUBLE)
                atomic_fetch_add(&p->bad_replies, 1);
        }
    }
    free(out);
    free(in);
    if (fd >= 0)
        wt_close(fd);
    atomic_store(&p->done, 1);
    return NULL;
}

/* One line a subscriber received: "MSG t <publisher> <seq>", or "MSG t big <seq> <text>". */
static void sub_line(sub *s, const char *line)
{
    char who[8];
    int seq, off = 0;
    if (strcmp(line, "BYE") == 0 && s->kind == SUB_QUIT && !s->bye) {
        s->bye = true;
        return;
    }
    if (s->bye || sscanf(line, "MSG t %7s %d%n", who, &seq, &off) != 2) {
        s->errors = true;
        return;
    }
    int *next = NULL;
    if (strcmp(who, "big") == 0 && strlen(line + off) == BIG + 1)
        next = &s->next_big;
    else if (who[0] >= '0' && who[0] <= '9' && who[1] == '\0' && line[off] == '\0')
        next = &s->next[who[0] - '0'];
    if (next == NULL || seq != *next) {
        s->errors = true;
        return;
    }
    (*next)++;
    s->got++;
}

static void sub_read(sub *s)
{
    for (;;) {
        ssize_t r = wt_recv(s->fd, s->buf + s->blen, sizeof(s->buf) - s->blen);
        int err = r < 0 ? wt_sock_errno() : 0;
        if (r == 0 || (r < 0 && err != EAGAIN && err != EINTR)) {
            s->ended = true;
            if (s->kind == SUB_QUIT) { /* as a client does after BYE */
                wt_close(s->fd);
                s->fd = -1;
            }
            return;
        }
        if (r < 0)
            return;
        s->blen += (size_t)r;
        size_t start = 0;
        for (size_t i = 0; i < s->blen; i++)
            if (s->buf[i] == '\n') {
                s->buf[i] = '\0';
                sub_line(s, s->buf + start);
                start = i + 1;
            }
        memmove(s->buf, s->buf + start, s->blen - start);
        s->blen -= start;
    }
}

/* A troublemaker that has read enough does its thing, in the middle of the fan-out. */
static void sub_act(sub *s)
{
    if (s->kind == SUB_GOOD || s->acted || s->got < ACT_AFTER)
        return;
    s->acted = true;
    if (s->kind == SUB_RESET) {
        (void)wt_linger_reset(s->fd);
        wt_close(s->fd);
        s->fd = -1;
        s->ended = true;
    } else if (s->kind == SUB_QUIT) {
        assert_int_equal(wt_send(s->fd, "QUIT\n", 5), 5);
    }
}

/* Reads what the subscribers that still read have, for up to 10 ms. */
static void pump(void)
{
    struct pollfd pfd[NSUBS + NTROUBLE];
    int map[NSUBS + NTROUBLE], n = 0;
    for (int i = 0; i < NSUBS + NTROUBLE; i++) {
        sub *su = &subs[i];
        if (!su->ended && !(su->kind == SUB_STOP && su->acted)) {
            pfd[n] = (struct pollfd){su->fd, POLLIN, 0};
            map[n++] = i;
        }
    }
    if (wt_poll(pfd, (wt_nfds)n, 10) <= 0)
        return;
    for (int k = 0; k < n; k++)
        if (pfd[k].revents != 0) {
            sub_read(&subs[map[k]]);
            sub_act(&subs[map[k]]);
        }
}

/* Every good subscriber has at least `want` messages (quitters have quit, publishers are
 * done, when pubs is not NULL). */
static bool caught_up(pub *pubs, long want)
{
    for (int i = 0; pubs != NULL && i < NPUBS; i++)
        if (!atomic_load(&pubs[i].done))
            return false;
    for (int i = 0; i < NSUBS + NTROUBLE; i++) {
        sub *s = &subs[i];
        if ((s->kind == SUB_GOOD && s->got < want) || (pubs && s->kind == SUB_QUIT && !s->ended))
            return false;
    }
    return true;
}

static int connect_sub(int port, bool small_window)
{
    /* A small window and small segments (where the system lets us ask for them): the kernel
     * can hold little for it, so once it stops reading its queue in the server grows. */
    int fd = small_window ? wt_connect_tcp_small(port, 4096, 1024) : wt_connect_tcp(port);
    assert_true(fd >= 0);
    send_str(fd, "SUB t\n");
    expect_line(fd, "OK");
    assert_int_equal(wt_set_nonblocking(fd), 0);
    return fd;
}

static bool no_conns_no_buffers(void *arg)
{
    weft_loop_stats st = wt_stats(arg);
    return st.live == 0 && st.buffer_bytes == 0;
}

static void fan_out(wt_server *s)
{
    pub pubs[NPUBS];
    pthread_t th[NPUBS];
    for (int i = 0; i < NPUBS; i++) {
        pubs[i].port = s->port;
        pubs[i].id = i;
        atomic_init(&pubs[i].done, 0);
        atomic_init(&pubs[i].bad_replies, 0);
        assert_int_equal(pthread_create(&th[i], NULL, publish, &pubs[i]), 0);
    }
    int64_t end = wt_now_ms() + 6 * WT_TIMEOUT_MS;
    while (!caught_up(pubs, (long)NPUBS * NMSGS) && wt_now_ms() < end)
        pump();
    for (int i = 0; i < NPUBS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&pubs[i].bad_replies), 0);
    }
    /* Every good subscriber got every message once, in each publisher's order. */
    for (int i = 0; i < NSUBS; i++) {
        assert_false(subs[i].errors);
        assert_false(subs[i].ended);
        for (int p = 0; p < NPUBS; p++)
            assert_int_equal(subs[i].next[p], NMSGS);
    }
    /* The troublemakers acted, and got prefixes. Those that quit were told BYE, and nothing
     * after it. */
    for (int i = NSUBS; i < NSUBS + NTROUBLE; i++) {
        assert_true(subs[i].acted);
        assert_false(subs[i].errors);
        if (subs[i].kind == SUB_QUIT)
            assert_true(subs[i].bye && subs[i].ended);
    }
}

/* One publisher, one big message at a time (BIG_BATCH at a time on Windows), each read by
 * every good subscriber before the next: their queues stay near empty, while the queues of
 * those that stopped reading grow until they reach write_high_water and the server drops
 * them. Until then they count in the answer, as do, for a moment, those that left in the
 * first phase and are still closing. Returns the messages sent. */
static int drop_the_stopped(wt_server *s)
{
    int fd = wt_connect_tcp(s->port);
    assert_true(fd >= 0);
    static char lines[BIG_BATCH * (BIG + 32)];
    char text[BIG + 1], ok[BIG_BATCH * 6];
    memset(text, 'y', BIG);
    text[BIG] = '\0';
    int sent = 0, reached = NSUBS + NTROUBLE;
    for (int after = 0; sent < BIG_MAX && after < 5;) {
        size_t len = 0;
        for (int k = 0; k < BIG_BATCH; k++, sent++)
            len +=
                (size_t)snprintf(lines + len, sizeof(lines) - len, "PUB t big %d %s\n", sent, text);
        /* "OK n", n two digits (NSUBS): 6 bytes each. */
        assert_int_equal(wt_exchange(fd, lines, len, ok, sizeof(ok), WT_TIMEOUT_MS), 0);
        for (int k = 0; k < BIG_BATCH; k++) {
            assert_int_equal(sscanf(ok + 6 * k, "OK %d", &reached), 1);
            assert_int_equal(ok[6 * k + 5], '\n');
            assert_true(reached >= NSUBS && reached <= NSUBS + NTROUBLE);
            after += reached == NSUBS;
        }
        int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
        while (!caught_up(NULL, (long)NPUBS * NMSGS + sent) && wt_now_ms() < end)
            pump();
    }
    assert_int_equal(reached, NSUBS);
    wt_close(fd);
    return sent;
}

static void test_fan_out(void **state)
{
    (void)state;
    wt_server s;
    start_chat(&s, 0);
    memset(subs, 0, sizeof(subs));
    for (int i = 0; i < NSUBS + NTROUBLE; i++) {
        sub *su = &subs[i];
        su->kind = i < NSUBS ? SUB_GOOD : (enum sub_kind)(SUB_RESET + (i - NSUBS) / 2);
        su->fd = connect_sub(s.port, su->kind == SUB_STOP);
    }
    weft_loop_stats per_loop[4];
    weft_stats st;
    assert_int_equal(weft_engine_get_stats(s.engine, &st, per_loop), 0);
    for (int l = 0; l < 4; l++)
        assert_true(per_loop[l].live >= 10); /* spread over the 4 loops */

    int64_t t0 = wt_now_ms();
    fan_out(&s);
    int64_t t1 = wt_now_ms();
    int big = drop_the_stopped(&s);
    print_message("%d publishers x %d messages to %d subscribers in %lld ms; %d big messages "
                  "until those that stopped reading were dropped, in %lld ms\n",
                  NPUBS, NMSGS, NSUBS + NTROUBLE, (long long)(t1 - t0), big,
                  (long long)(wt_now_ms() - t1));
    for (int i = 0; i < NSUBS; i++) {
        assert_false(subs[i].errors);
        assert_int_equal(subs[i].next_big, big);
    }
    /* Those that stopped reading were closed by the server. What they read now is still a
     * prefix of each stream, and then it ends. */
    for (int i = NSUBS; i < NSUBS + NTROUBLE; i++) {
        sub *su = &subs[i];
        int64_t end = wt_now_ms() + WT_TIMEOUT_MS;
        while (su->kind == SUB_STOP && !su->ended && wt_now_ms() < end) {
            struct pollfd p = {su->fd, POLLIN, 0};
            if (wt_poll(&p, 1, 10) > 0)
                sub_read(su);
        }
        assert_true(su->ended);
        assert_false(su->errors);
        assert_true(su->next_big < big);
    }
    /* Nothing stays behind once the rest close. */
    for (int i = 0; i < NSUBS + NTROUBLE; i++)
        if (subs[i].fd >= 0)
            wt_close(subs[i].fd);
    assert_true(wt_wait_for(no_conns_no_buffers, s.engine, WT_TIMEOUT_MS));
    wt_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocol),
        cmocka_unit_test(test_idle_goodbye),
        cmocka_unit_test(test_fan_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
