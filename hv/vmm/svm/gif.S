/* The SVM backend's two GIF windows (struct vmm_backend wait_nmi and take_nmi). */
	.text
	.code64

/*
 * The only places the host opens GIF, so the only places a host NMI can arrive; the trap
 * handler (core/cpu.c) moves an NMI's return address from the window to the label after it
 * (svm.c registers the windows with cpu_nmi_windows).
 *
 * bool svm_wait_nmi(void): sleep until an NMI; false when something else ended the sleep.
 */
	.globl svm_wait_nmi, nmi_hlt, nmi_hlt_end, nmi_woken
svm_wait_nmi:
	xor %eax, %eax
	stgi
nmi_hlt:
	hlt
nmi_hlt_end:
	clgi
	ret
nmi_woken:
	clgi
	mov $1, %eax
	ret

/* bool svm_take_nmi(void): take the NMI an NMI intercept left pending (false: none came). */
	.globl svm_take_nmi, nmi_spin, nmi_spin_end, nmi_taken
svm_take_nmi:
	mov $1000000, %ecx
	stgi
nmi_spin:
	dec %ecx
	jnz nmi_spin
nmi_spin_end:
	clgi
	xor %eax, %eax
	ret
nmi_taken:
	clgi
	mov $1, %eax
	ret

