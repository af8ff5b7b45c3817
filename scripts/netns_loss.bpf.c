/* Packet loss for scripts/netns_study.sh where the kernel has no netem: a tc cls_bpf program in direct-action mode
 * on a link's egress that drops LOSS_PER_MILLION packets in a million, independently at random (the kernel's
 * bpf_get_prandom_u32). Built with `clang -O2 -target bpf -DLOSS_PER_MILLION=10000 -c`; no kernel headers needed. */
#ifndef LOSS_PER_MILLION
#define LOSS_PER_MILLION 10000
#endif
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

static unsigned int (*bpf_get_prandom_u32)(void) = (void *)7; /* BPF_FUNC_get_prandom_u32 */

__attribute__((section("classifier"), used)) int drop_at_random(void *skb) {
    (void)skb;
    return bpf_get_prandom_u32() % 1000000u < LOSS_PER_MILLION ? TC_ACT_SHOT : TC_ACT_OK;
}

char _license[] __attribute__((section("license"), used)) = "GPL";
