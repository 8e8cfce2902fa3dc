/*
 * broker_htab — a tiny intrusive chained hash table shared by the group
 * coordinator and the lag monitor (internal to broker/, not an API).
 *
 * Design: the element embeds an hnode_t as its FIRST member, so a node
 * pointer casts back to the element. The caller computes the hash (FNV-1a
 * helpers below) and compares keys itself while walking a bucket. Buckets
 * double when the element count reaches the bucket count. No deletion
 * during HTAB_FOREACH except of the current node (the macro has already
 * read the next pointer), and no insertion during it.
 * Threads: none; the owner serialises access. Memory: buckets are freed
 * with htab_fini; elements belong to the caller.
 */
#ifndef EDDY_BROKER_HTAB_H
#define EDDY_BROKER_HTAB_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/core_alloc.h"

typedef struct hnode {
    struct hnode *next;
    uint64_t hash;
} hnode_t;

typedef struct htab {
    hnode_t **b;
    size_t nb, n;
} htab_t;

static inline uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}
#define FNV_INIT 14695981039346656037ULL

static inline void htab_grow(htab_t *t)
{
    size_t nb = t->nb ? t->nb * 2 : 16;
    hnode_t **b = core_xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < t->nb; i++) {
        hnode_t *n = t->b[i], *next;
        for (; n; n = next) {
            next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

static inline void htab_add(htab_t *t, hnode_t *n, uint64_t hash)
{
    if (t->n >= t->nb)
        htab_grow(t);
    n->hash = hash;
    n->next = t->b[hash & (t->nb - 1)];
    t->b[hash & (t->nb - 1)] = n;
    t->n++;
}

static inline void htab_del(htab_t *t, hnode_t *n)
{
    hnode_t **pp = &t->b[n->hash & (t->nb - 1)];
    for (; *pp; pp = &(*pp)->next)
        if (*pp == n) {
            *pp = n->next;
            t->n--;
            return;
        }
}

#define HTAB_FOREACH(t, var)                                                             \
    for (size_t var##_i = 0; var##_i < (t)->nb; var##_i++)                               \
        for (hnode_t *var = (t)->b[var##_i], *var##_next = var ? var->next : NULL; var;  \
             var = var##_next, var##_next = var ? var->next : NULL)

static inline void htab_fini(htab_t *t)
{
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
}

#endif
