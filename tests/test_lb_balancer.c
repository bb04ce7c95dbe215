/* The balancer front: defaults, which configs are refused, and a user balancer plugged into
 * the same vtable as the built-ins. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "weft/balancer.h"

static void test_config_defaults(void **unused)
{
    (void)unused;
    weft_lb_config cfg;
    memset(&cfg, 0xa5, sizeof(cfg)); /* garbage in every field */
    weft_lb_config_init(&cfg);
    assert_int_equal(cfg.kind, WEFT_LB_ROUND_ROBIN);
    assert_int_equal(cfg.vnodes, 160);
    assert_false(cfg.hash_port);
    assert_int_equal(cfg.seed, 0);
    assert_null(cfg.custom);
    assert_null(cfg.custom_ctx);
    weft_lb_config_init(NULL); /* harmless */
}

static void test_every_builtin_kind_creates(void **unused)
{
    (void)unused;
    static const struct {
        weft_lb_kind kind;
        const char *name;
        bool live;
    } kinds[] = {
        {WEFT_LB_ROUND_ROBIN, "round-robin", false},
        {WEFT_LB_LEAST_CONNECTIONS, "least-connections", true},
        {WEFT_LB_CONSISTENT_HASH, "consistent-hash", false},
        {WEFT_LB_RANDOM, "random", false},
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        weft_lb_config cfg;
        weft_lb_config_init(&cfg);
        cfg.kind = kinds[i].kind;
        weft_balancer *b = NULL;
        assert_int_equal(weft_balancer_create(&cfg, 1, &b), 0);
        assert_string_equal(weft_balancer_get_name(b), kinds[i].name);
        assert_int_equal(weft_balancer_needs_live(b), kinds[i].live);
        /* One loop: every balancer has only one answer. */
        uint64_t live[1] = {5};
        weft_lb_view view = {1, live};
        for (int j = 0; j < 10; j++)
            assert_int_equal(weft_balancer_pick(b, NULL, 0, &view), 0);
        weft_balancer_destroy(b);
    }
    weft_balancer_destroy(NULL); /* harmless */
}

static int refused(const weft_lb_config *cfg, size_t nloops)
{
    weft_balancer *b = (weft_balancer *)&b; /* anything but NULL */
    int rc = weft_balancer_create(cfg, nloops, &b);
    assert_null(b); /* a failed create never leaves a handle behind */
    return rc;
}

static size_t dummy_pick(void *state, const struct sockaddr *peer, socklen_t peer_len,
                         const weft_lb_view *view)
{
    (void)state;
    (void)peer;
    (void)peer_len;
    (void)view;
    return 0;
}

static void test_bad_configs_refused(void **unused)
{
    (void)unused;
    weft_lb_config cfg;
    weft_lb_config_init(&cfg);

    assert_int_equal(refused(NULL, 4), WEFT_EINVAL);
    assert_int_equal(weft_balancer_create(&cfg, 4, NULL), WEFT_EINVAL);
    assert_int_equal(refused(&cfg, 0), WEFT_EINVAL); /* no loops to pick from */

    cfg.kind = (weft_lb_kind)(WEFT_LB_CUSTOM + 1);
    assert_int_equal(refused(&cfg, 4), WEFT_EINVAL);
    cfg.kind = (weft_lb_kind)-1;
    assert_int_equal(refused(&cfg, 4), WEFT_EINVAL);

    weft_lb_config_init(&cfg);
    cfg.kind = WEFT_LB_CUSTOM; /* custom without a vtable */
    assert_int_equal(refused(&cfg, 4), WEFT_EINVAL);
    weft_balancer_vtable no_pick = {.name = "no-pick"};
    cfg.custom = &no_pick;
    assert_int_equal(refused(&cfg, 4), WEFT_EINVAL);
    weft_balancer_vtable ok = {.name = "ok", .pick = dummy_pick};
    cfg.custom = &ok;
    weft_balancer *b = NULL;
    assert_int_equal(weft_balancer_create(&cfg, 4, &b), 0);
    weft_balancer_destroy(b);

    weft_lb_config_init(&cfg);
    cfg.kind = WEFT_LB_CONSISTENT_HASH;
    cfg.vnodes = 0; /* an empty ring */
    assert_int_equal(refused(&cfg, 4), WEFT_EINVAL);
    cfg.vnodes = 1; /* sparse but valid */
    assert_int_equal(weft_balancer_create(&cfg, 4, &b), 0);
    weft_balancer_destroy(b);
}

/* A user balancer: everything to the loop named in its context, counting what it is told. */
typedef struct sticky {
    size_t target;
    int creates, destroys, picks, opens, closes;
    size_t last_open, last_close;
    int fail_create;
} sticky;

static int sticky_create(const weft_lb_config *cfg, size_t nloops, void **state)
{
    sticky *s = cfg->custom_ctx;
    if (s->fail_create)
        return WEFT_ENOMEM;
    assert_int_equal(nloops, 6);
    s->creates++;
    *state = s;
    return 0;
}

static void sticky_destroy(void *state)
{
    ((sticky *)state)->destroys++;
}

static size_t sticky_pick(void *state, const struct sockaddr *peer, socklen_t peer_len,
                          const weft_lb_view *view)
{
    (void)peer;
    (void)peer_len;
    sticky *s = state;
    s->picks++;
    assert_non_null(view);
    assert_non_null(view->live); /* it asked for counts */
    return s->target;
}

static void sticky_open(void *state, size_t loop)
{
    sticky *s = state;
    s->opens++;
    s->last_open = loop;
}

static void sticky_close(void *state, size_t loop)
{
    sticky *s = state;
    s->closes++;
    s->last_close = loop;
}

static const weft_balancer_vtable sticky_vtable = {
    .name = "sticky",
    .flags = WEFT_LB_NEEDS_LIVE,
    .create = sticky_create,
    .destroy = sticky_destroy,
    .pick = sticky_pick,
    .on_open = sticky_open,
    .on_close = sticky_close,
};

static void test_custom_balancer_plugs_in(void **unused)
{
    (void)unused;
    sticky ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.target = 4;
    weft_lb_config cfg;
    weft_lb_config_init(&cfg);
    cfg.kind = WEFT_LB_CUSTOM;
    cfg.custom = &sticky_vtable;
    cfg.custom_ctx = &ctx;

    weft_balancer *b = NULL;
    assert_int_equal(weft_balancer_create(&cfg, 6, &b), 0);
    assert_int_equal(ctx.creates, 1);
    assert_string_equal(weft_balancer_get_name(b), "sticky");
    assert_true(weft_balancer_needs_live(b));

    uint64_t live[6] = {0};
    weft_lb_view view = {6, live};
    for (int i = 0; i < 3; i++)
        assert_int_equal(weft_balancer_pick(b, NULL, 0, &view), 4);
    assert_int_equal(ctx.picks, 3);

    weft_balancer_on_open(b, 4);
    weft_balancer_on_open(b, 2);
    weft_balancer_on_close(b, 4);
    assert_int_equal(ctx.opens, 2);
    assert_int_equal(ctx.last_open, 2);
    assert_int_equal(ctx.closes, 1);
    assert_int_equal(ctx.last_close, 4);

    /* A user balancer that answers out of range is folded back in, never trusted blindly. */
    ctx.target = 6 + 3;
    assert_int_equal(weft_balancer_pick(b, NULL, 0, &view), 3);

    weft_balancer_destroy(b);
    assert_int_equal(ctx.destroys, 1);

    /* Its create failing fails the whole create, with its code, and destroy never runs. */
    memset(&ctx, 0, sizeof(ctx));
    ctx.fail_create = 1;
    b = (weft_balancer *)&b;
    assert_int_equal(weft_balancer_create(&cfg, 6, &b), WEFT_ENOMEM);
    assert_null(b);
    assert_int_equal(ctx.destroys, 0);
}

static size_t ctx_pick(void *state, const struct sockaddr *peer, socklen_t peer_len,
                       const weft_lb_view *view)
{
    (void)peer;
    (void)peer_len;
    (void)view;
    return *(const size_t *)state;
}

static void test_stateless_custom_uses_its_context(void **unused)
{
    (void)unused;
    /* No create: the state pick sees is custom_ctx itself, and destroy leaves it alone. */
    static const weft_balancer_vtable vt = {.pick = ctx_pick};
    size_t answer = 1;
    weft_lb_config cfg;
    weft_lb_config_init(&cfg);
    cfg.kind = WEFT_LB_CUSTOM;
    cfg.custom = &vt;
    cfg.custom_ctx = &answer;
    weft_balancer *b = NULL;
    assert_int_equal(weft_balancer_create(&cfg, 2, &b), 0);
    assert_string_equal(weft_balancer_get_name(b), "custom"); /* unnamed */
    assert_false(weft_balancer_needs_live(b));
    assert_int_equal(weft_balancer_pick(b, NULL, 0, NULL), 1);
    weft_balancer_on_open(b, 0); /* no hooks: nothing happens */
    weft_balancer_on_close(b, 0);
    weft_balancer_destroy(b);
    assert_int_equal(answer, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_every_builtin_kind_creates),
        cmocka_unit_test(test_bad_configs_refused),
        cmocka_unit_test(test_custom_balancer_plugs_in),
        cmocka_unit_test(test_stateless_custom_uses_its_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
