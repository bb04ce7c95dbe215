/* A loop's inbox: tasks come out in the order they went in, a drain takes the whole batch,
 * many producers lose nothing and duplicate nothing, and a burst of pushes costs one
 * wakeup of the loop (an eventfd write, or on Windows a completion posted to its port). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "waker.h"

static weft__task task_with_fd(int fd)
{
    weft__task t;
    memset(&t, 0, sizeof(t));
    t.kind = WEFT__TASK_WAKE;
    t.fd = (weft__sock)fd;
    return t;
}

/* A queue whose waker a loop's backend watches (waker.h). */
static void queue_init(weft__queue *q)
{
    assert_int_equal(weft__queue_init(q), 0);
    assert_int_equal(wt_waker_attach(&q->waker), 0);
}

static void queue_destroy(weft__queue *q)
{
    wt_waker_detach(&q->waker);
    weft__queue_destroy(q);
}

/* The wakeups written and not yet taken, without draining the queue: 0 when none was. */
static uint64_t wakeups_pending(weft__queue *q)
{
    return wt_waker_take(&q->waker);
}

/* The task's fd as the int the test gave it. */
static int task_fd(const weft__task *t)
{
    return (int)t->fd;
}

static void test_tasks_come_out_in_push_order(void **state)
{
    (void)state;
    weft__queue q;
    queue_init(&q);

    for (int i = 0; i < 300; i++) { /* past the first growth of the array */
        weft__task t = task_with_fd(i);
        t.kind = (i % 2) ? WEFT__TASK_WRITE : WEFT__TASK_CLOSE;
        t.ref.slot = (uint32_t)i * 7u;
        assert_int_equal(weft__queue_push(&q, &t), 0);
    }
    weft__task *batch;
    size_t n;
    weft__queue_drain(&q, &batch, &n);

    assert_int_equal(n, 300);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(task_fd(&batch[i]), i);
        assert_int_equal(batch[i].kind, (i % 2) ? WEFT__TASK_WRITE : WEFT__TASK_CLOSE);
        assert_int_equal(batch[i].ref.slot, (uint32_t)i * 7u);
    }
    queue_destroy(&q);
}

static void test_drain_swaps_whole_batches(void **state)
{
    (void)state;
    weft__queue q;
    queue_init(&q);
    weft__task *first, *second, *third;
    size_t n1, n2, n3;

    for (int i = 0; i < 3; i++) {
        weft__task t = task_with_fd(i);
        weft__queue_push(&q, &t);
    }
    weft__queue_drain(&q, &first, &n1);
    /* Pushes after a drain go to the other buffer: the batch being run stays intact. */
    for (int i = 10; i < 12; i++) {
        weft__task t = task_with_fd(i);
        weft__queue_push(&q, &t);
    }
    assert_int_equal(n1, 3);
    assert_int_equal(task_fd(&first[0]), 0);
    assert_int_equal(task_fd(&first[2]), 2);
    weft__queue_drain(&q, &second, &n2);
    weft__queue_drain(&q, &third, &n3);

    assert_int_equal(n2, 2);
    assert_ptr_not_equal(second, first);
    assert_int_equal(task_fd(&second[0]), 10);
    assert_int_equal(task_fd(&second[1]), 11);
    assert_int_equal(n3, 0);
    queue_destroy(&q);
}

static void test_burst_of_pushes_costs_one_wakeup(void **state)
{
    (void)state;
    weft__queue q;
    queue_init(&q);
    weft__task *batch;
    size_t n;

    for (int i = 0; i < 50; i++) {
        weft__task t = task_with_fd(i);
        weft__queue_push(&q, &t);
    }
    assert_int_equal(q.wakeups, 1);
    assert_true(wt_waker_wait(&q.waker, 0)); /* the loop wakes, and drains */
    weft__queue_drain(&q, &batch, &n);
    assert_int_equal(n, 50);
    assert_int_equal(wakeups_pending(&q), 0);

    /* After a drain the next push must wake the loop again, once. */
    for (int i = 0; i < 5; i++) {
        weft__task t = task_with_fd(i);
        weft__queue_push(&q, &t);
    }
    assert_int_equal(q.wakeups, 2);
    assert_int_equal(wakeups_pending(&q), 1);

    /* An empty drain writes nothing; a kick always does. */
    weft__queue_drain(&q, &batch, &n);
    weft__queue_drain(&q, &batch, &n);
    assert_int_equal(n, 0);
    assert_int_equal(q.wakeups, 2);
    weft__queue_kick(&q);
    assert_int_equal(wakeups_pending(&q), 1);
    queue_destroy(&q);
}

#define PRODUCERS            4
#define PUSHES_PER_THREAD    20000
#define PRODUCER_SHIFT       24
#define CONSUMER_PATIENCE_MS 5000

typedef struct producer {
    weft__queue *q;
    int id;
    int failures;
} producer;

static void *producer_main(void *arg)
{
    producer *p = arg;
    for (int i = 0; i < PUSHES_PER_THREAD; i++) {
        weft__task t = task_with_fd((p->id << PRODUCER_SHIFT) | i);
        if (weft__queue_push(p->q, &t) != 0)
            p->failures++;
    }
    return NULL;
}

static void test_many_producers_drained_exactly_once(void **state)
{
    (void)state;
    weft__queue q;
    queue_init(&q);
    producer prods[PRODUCERS];
    pthread_t threads[PRODUCERS];
    int next_seq[PRODUCERS] = {0};
    size_t total = 0, batches = 0;

    for (int i = 0; i < PRODUCERS; i++) {
        prods[i] = (producer){&q, i, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, producer_main, &prods[i]), 0);
    }
    /* Consume as a loop does: sleep on the waker, drain on wakeup. A lost wakeup shows as
     * a wait that times out while tasks wait. */
    while (total < (size_t)PRODUCERS * PUSHES_PER_THREAD) {
        assert_true(wt_waker_wait(&q.waker, CONSUMER_PATIENCE_MS));
        weft__task *batch;
        size_t n;
        weft__queue_drain(&q, &batch, &n);
        batches++;
        for (size_t k = 0; k < n; k++) {
            int id = task_fd(&batch[k]) >> PRODUCER_SHIFT;
            int seq = task_fd(&batch[k]) & ((1 << PRODUCER_SHIFT) - 1);
            assert_in_range(id, 0, PRODUCERS - 1);
            /* Each producer's tasks arrive once each, in its own order. */
            assert_int_equal(seq, next_seq[id]);
            next_seq[id]++;
        }
        total += n;
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(prods[i].failures, 0);
        assert_int_equal(next_seq[i], PUSHES_PER_THREAD);
    }

    weft__task *batch;
    size_t n;
    weft__queue_drain(&q, &batch, &n);
    assert_int_equal(n, 0);
    /* Wakeups never outnumber the drains that answered them (plus a stale one at most). */
    pthread_mutex_lock(&q.mu);
    uint64_t wakeups = q.wakeups;
    pthread_mutex_unlock(&q.mu);
    assert_true(wakeups <= batches + 1);
    assert_true(wakeups >= 1);
    queue_destroy(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tasks_come_out_in_push_order),
        cmocka_unit_test(test_drain_swaps_whole_batches),
        cmocka_unit_test(test_burst_of_pushes_costs_one_wakeup),
        cmocka_unit_test(test_many_producers_drained_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
