// SPDX-License-Identifier: MIT OR GPL-2.0
//
// kwatch's socket-owner iterator: one record per socket fd of every process, from the kernel's own fd tables.
// Reading /proc/PID/fd/N costs a dentry lookup and a readlink per fd (~2.6 us each); at a million sockets that
// was 2.6 s of the 7.2 s a `kwatch --once --json` took. This walks the same tables in the kernel (a task_file
// BPF iterator, Linux 5.8+) and writes 32 bytes per socket fd. Built with bpf/build.sh into
// src/proc/task_sockets.bpf.o, which the binary embeds (no clang needed to build kwatch).
//
// For a TCP socket the record also carries what getsockopt would answer for SO_KEEPALIVE, TCP_KEEPIDLE,
// TCP_KEEPINTVL, TCP_KEEPCNT and TCP_USER_TIMEOUT (net/ipv4/tcp.c, do_tcp_getsockopt; include/net/tcp.h,
// keepalive_time_when and friends): a socket's own value, or its namespace's sysctl where it set none. Read
// through pidfd_getfd and five getsockopt calls, those cost 0.8 s at a million sockets. Times stay in jiffies;
// kwatch divides by HZ, which it measures on a socket of its own (src/proc/task_file_iter.rs).
//
// Two programs write the same records; kwatch loads the first the kernel accepts:
// - task_sock_typed (Linux 5.11+): bpf_sock_from_file turns the file into a typed `struct socket *`, so the
//   fields of struct socket, sock, net are plain loads the verifier checks against the kernel's BTF and the JIT
//   inlines; only the four of struct tcp_sock are helper calls (see keepalive_typed).
// - task_sock_probe (Linux 5.8+): file->private_data is a void pointer to the verifier, so every field is read
//   through a bpf_probe_read_kernel call (~14 per TCP socket; at a million sockets copy_from_kernel_nofault
//   was 10 % of a snapshot's samples).
//
// Only the fields read are declared; preserve_access_index makes their offsets relocations that the loader
// (aya) resolves against the running kernel's BTF. The context is the iterator's argument list: meta, task, fd,
// file, eight bytes each.
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef unsigned short __u16;
typedef unsigned char __u8;

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct seq_file;
struct inode {
	__u16 i_mode;
	unsigned long i_ino;
};
struct file {
	struct inode *f_inode;
	void *private_data;
};
struct task_struct {
	int tgid;
};
struct bpf_iter_meta {
	struct seq_file *seq;
};
struct bpf_iter__task_file {
	union { struct bpf_iter_meta *meta; __u64 m_; };
	union { struct task_struct *task; __u64 t_; };
	__u32 fd;
	union { struct file *file; __u64 f_; };
};

struct netns_ipv4 {
	int sysctl_tcp_keepalive_time;
	int sysctl_tcp_keepalive_intvl;
	// A u8 since Linux 6.0, an int before. Declared unsigned and 4 bytes wide for the typed program's plain load:
	// the loader narrows a load of an unsigned field to the kernel's width (6.0+), and leaves a load of the
	// same width alone (an int, read as its u32 bits, as task_sock_probe's `wide` read does).
	__u32 sysctl_tcp_keepalive_probes;
};
struct net {
	struct netns_ipv4 ipv4;
};
typedef struct {
	struct net *net;
} possible_net_t;
struct sock_common {
	unsigned short skc_family;
	unsigned char skc_state;
	possible_net_t skc_net;
	unsigned long skc_flags; // Linux 6.11+ (in a union); sk_flags of struct sock before
};
struct sock {
	struct sock_common __sk_common;
	unsigned long sk_flags;
	__u16 sk_type;
	__u16 sk_protocol;
};
struct socket {
	struct sock *sk;
};
struct inet_connection_sock {
	__u32 icsk_user_timeout;
};
struct tcp_sock {
	struct inet_connection_sock inet_conn;
	__u32 keepalive_time;
	__u32 keepalive_intvl;
	__u8 keepalive_probes;
};

#pragma clang attribute pop

static long (*bpf_seq_write)(struct seq_file *m, const void *data, __u32 len) = (void *)127;
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *unsafe_ptr) = (void *)113;
// Linux 5.11+: the file's socket, typed (NULL unless the file is a socket).
static struct socket *(*bpf_sock_from_file)(struct file *file) = (void *)162;

// Reads `field` (an lvalue through a pointer to a declared struct) into `dst`, at the running kernel's offset.
#define READ(dst, field) bpf_probe_read_kernel(&(dst), sizeof(dst), __builtin_preserve_access_index(&(field)))
// Whether the running kernel has a field.
#define FIELD_EXISTS(field) __builtin_preserve_field_info(field, 2 /* BPF_FIELD_EXISTS */)
// The width the running kernel gives a field (sysctl_tcp_keepalive_probes was an int before Linux 6.0, a u8 since).
#define FIELD_SIZE(field) __builtin_preserve_field_info(field, 1 /* BPF_FIELD_BYTE_SIZE */)

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
// enum sock_flags: SOCK_DEAD, SOCK_DONE, SOCK_URGINLINE, SOCK_KEEPOPEN, unchanged since Linux 2.6.
#define SOCK_KEEPOPEN 3

#define TCP 1	  // the keepalive fields are read
#define KEEPOPEN 2 // SO_KEEPALIVE is on

struct record {
	__u32 pid;
	__u32 fd;
	__u64 ino;
	// TCP_KEEPIDLE and TCP_KEEPINTVL in jiffies, TCP_KEEPCNT, TCP_USER_TIMEOUT in milliseconds: the socket's own
	// or its namespace's, as getsockopt answers.
	__u32 idle;
	__u32 intvl;
	__u32 user_timeout;
	__u16 probes;
	__u8 flags;
	__u8 state; // TCP_ESTABLISHED 1 ... TCP_LISTEN 10
};

// Fills the keepalive part of `r` when `sock` is a TCP socket; leaves `flags` 0 otherwise (or when a read fails).
// task_sock_probe's: every field through bpf_probe_read_kernel.
static __attribute__((always_inline)) void keepalive_probe(struct socket *sock, struct record *r)
{
	struct sock *sk = 0;
	if (READ(sk, sock->sk) || !sk)
		return;
	unsigned short family = 0;
	unsigned char state = 0;
	__u16 type = 0, protocol = 0;
	if (READ(family, sk->__sk_common.skc_family) || READ(type, sk->sk_type) ||
	    READ(protocol, sk->sk_protocol) || READ(state, sk->__sk_common.skc_state))
		return;
	if ((family != AF_INET && family != AF_INET6) || type != SOCK_STREAM || protocol != IPPROTO_TCP)
		return;
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	struct inet_connection_sock *icsk = (struct inet_connection_sock *)sk;
	unsigned long flags = 0;
	__u32 idle = 0, intvl = 0, user_timeout = 0, probes = 0;
	__u8 own_probes = 0;
	if (FIELD_EXISTS(sk->sk_flags)) {
		if (READ(flags, sk->sk_flags))
			return;
	} else if (READ(flags, sk->__sk_common.skc_flags)) {
		return;
	}
	if (READ(idle, tp->keepalive_time) || READ(intvl, tp->keepalive_intvl) ||
	    READ(own_probes, tp->keepalive_probes) || READ(user_timeout, icsk->icsk_user_timeout))
		return;
	probes = own_probes;
	if (!idle || !intvl || !probes) {
		struct net *net = 0;
		if (READ(net, sk->__sk_common.skc_net.net) || !net)
			return;
		int net_idle = 0, net_intvl = 0;
		if (READ(net_idle, net->ipv4.sysctl_tcp_keepalive_time) ||
		    READ(net_intvl, net->ipv4.sysctl_tcp_keepalive_intvl))
			return;
		__u32 net_probes = 0;
		if (FIELD_SIZE(net->ipv4.sysctl_tcp_keepalive_probes) == 4) {
			int wide = 0;
			if (bpf_probe_read_kernel(&wide, 4,
						  __builtin_preserve_access_index(&net->ipv4.sysctl_tcp_keepalive_probes)))
				return;
			net_probes = wide;
		} else {
			__u8 narrow = 0;
			if (READ(narrow, net->ipv4.sysctl_tcp_keepalive_probes))
				return;
			net_probes = narrow;
		}
		if (!idle)
			idle = net_idle;
		if (!intvl)
			intvl = net_intvl;
		if (!probes)
			probes = net_probes > 65535 ? 65535 : net_probes;
	}
	r->idle = idle;
	r->intvl = intvl;
	r->user_timeout = user_timeout;
	r->probes = probes;
	r->state = state;
	r->flags = TCP | ((flags >> SOCK_KEEPOPEN) & 1 ? KEEPOPEN : 0);
}

// keepalive_probe's twin for task_sock_typed: the same fields and the same answers, as plain loads through typed
// pointers, but for the four of struct tcp_sock. A load that faults reads 0 (the JIT's exception table) where
// keepalive_probe would give up; neither happens on a live socket, which the iterator's reference to its file
// keeps alive.
//
// The struct tcp_sock fields stay helper calls: a struct sock pointer may not be read past struct sock, and the
// verifier (Linux 6.18) marks the one read from a socket untrusted, which bpf_skc_to_tcp_sock refuses ("R1
// type=untrusted_ptr_ expected=sock_common, ..."). The kfunc bpf_rdonly_cast (6.2+) would give an untrusted
// tcp_sock to load from, but the loader (aya 0.14) cannot link kfunc calls.
static __attribute__((always_inline)) void keepalive_typed(struct file *file, struct record *r)
{
	struct socket *sock = bpf_sock_from_file(file);
	if (!sock)
		return;
	struct sock *sk = sock->sk;
	if (!sk)
		return;
	unsigned short family = sk->__sk_common.skc_family;
	if ((family != AF_INET && family != AF_INET6) || sk->sk_type != SOCK_STREAM || sk->sk_protocol != IPPROTO_TCP)
		return;
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	unsigned long flags = FIELD_EXISTS(sk->sk_flags) ? sk->sk_flags : sk->__sk_common.skc_flags;
	__u32 idle = 0, intvl = 0, probes = 0, user_timeout = 0;
	__u8 own_probes = 0;
	if (READ(idle, tp->keepalive_time) || READ(intvl, tp->keepalive_intvl) ||
	    READ(own_probes, tp->keepalive_probes) || READ(user_timeout, tp->inet_conn.icsk_user_timeout))
		return;
	probes = own_probes;
	if (!idle || !intvl || !probes) {
		struct net *net = sk->__sk_common.skc_net.net;
		if (!net)
			return;
		if (!idle)
			idle = net->ipv4.sysctl_tcp_keepalive_time;
		if (!intvl)
			intvl = net->ipv4.sysctl_tcp_keepalive_intvl;
		if (!probes) {
			__u32 net_probes = net->ipv4.sysctl_tcp_keepalive_probes;
			probes = net_probes > 65535 ? 65535 : net_probes;
		}
	}
	r->idle = idle;
	r->intvl = intvl;
	r->user_timeout = user_timeout;
	r->probes = probes;
	r->state = sk->__sk_common.skc_state;
	r->flags = TCP | ((flags >> SOCK_KEEPOPEN) & 1 ? KEEPOPEN : 0);
}

// Fills the record of a socket fd but its keepalive part, and returns the socket's file; NULL when the fd is not
// a socket.
static __attribute__((always_inline)) struct file *socket_record(struct bpf_iter__task_file *ctx, struct record *r)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	if (!task || !file)
		return 0;
	struct inode *inode = file->f_inode;
	if (!inode || (inode->i_mode & 0170000) != 0140000)
		return 0;
	r->pid = task->tgid;
	r->fd = ctx->fd;
	r->ino = inode->i_ino;
	return file;
}

__attribute__((section("iter/task_file"), used))
int task_sock_typed(struct bpf_iter__task_file *ctx)
{
	struct record r = {};
	struct file *file = socket_record(ctx, &r);
	if (!file)
		return 0;
	keepalive_typed(file, &r);
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

__attribute__((section("iter/task_file"), used))
int task_sock_probe(struct bpf_iter__task_file *ctx)
{
	struct record r = {};
	struct file *file = socket_record(ctx, &r);
	if (!file)
		return 0;
	keepalive_probe((struct socket *)file->private_data, &r);
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

char LICENSE[] __attribute__((section("license"), used)) = "Dual MIT/GPL";
