# docker-top stand-in for a guest process (runtime/runvm/shim/top.py): forwards every signal it gets to the
# vm-shim over fd 3 (a SOCK_SEQPACKET socket), and ends as the vm-shim tells it when the guest process ends.
    .intel_syntax noprefix
    .globl _start
_start:
    sub rsp, 256
    mov qword ptr [rsp+192], -1          # the signal set: every signal
    mov eax, 14                          # rt_sigprocmask(SIG_BLOCK, &all, NULL, 8)
    xor edi, edi
    lea rsi, [rsp+192]
    xor edx, edx
    mov r10d, 8
    syscall
    mov eax, 289                         # signalfd4(-1, &all, 8, 0): SIGKILL and SIGSTOP are left out by the kernel
    mov edi, -1
    lea rsi, [rsp+192]
    mov edx, 8
    xor r10d, r10d
    syscall
    test eax, eax
    js exit0
    mov r12d, eax
    mov dword ptr [rsp], 3               # pollfd[0]: fd 3, POLLIN
    mov dword ptr [rsp+4], 1
    mov dword ptr [rsp+8], r12d          # pollfd[1]: the signalfd, POLLIN
    mov dword ptr [rsp+12], 1
loop:
    mov eax, 7                           # poll(fds, 2, -1)
    mov rdi, rsp
    mov esi, 2
    mov edx, -1
    syscall
    test eax, eax
    js loop
    movzx eax, word ptr [rsp+14]         # a signal: read its signalfd_siginfo, send ssi_signo (4 bytes)
    test eax, eax
    jz message
    xor eax, eax
    mov edi, r12d
    lea rsi, [rsp+16]
    mov edx, 128
    syscall
    cmp eax, 128
    jne message
    mov eax, 1
    mov edi, 3
    lea rsi, [rsp+16]
    mov edx, 4
    syscall
message:
    movzx eax, word ptr [rsp+6]          # the vm-shim: 8 bytes (kind, value), or EOF when it is gone
    test eax, eax
    jz loop
    xor eax, eax
    mov edi, 3
    lea rsi, [rsp+144]
    mov edx, 8
    syscall
    cmp eax, 8
    jne exit0
    mov ebx, dword ptr [rsp+148]
    cmp dword ptr [rsp+144], 1
    jne exit_value
    xor eax, eax                         # kind 1: die of signal `value`: default action, unblock, raise
    mov qword ptr [rsp+160], rax
    mov qword ptr [rsp+168], rax
    mov qword ptr [rsp+176], rax
    mov qword ptr [rsp+184], rax
    mov eax, 13                          # rt_sigaction(value, {SIG_DFL}, NULL, 8)
    mov edi, ebx
    lea rsi, [rsp+160]
    xor edx, edx
    mov r10d, 8
    syscall
    mov eax, 39                          # getpid
    syscall
    mov edi, eax
    mov eax, 62                          # kill(self, value): pending while blocked
    mov esi, ebx
    syscall
    mov eax, 14                          # rt_sigprocmask(SIG_UNBLOCK, &all, NULL, 8): delivered now
    mov edi, 1
    lea rsi, [rsp+192]
    xor edx, edx
    mov r10d, 8
    syscall
    add ebx, 128                         # still here (a signal that does not kill): exit 128+value
exit_value:
    mov edi, ebx                         # kind 0: exit(value)
    jmp do_exit
exit0:
    xor edi, edi
do_exit:
    mov eax, 231                         # exit_group
    syscall
