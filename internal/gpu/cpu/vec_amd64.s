// AVX2+FMA elementwise kernels of the float32 CPU backend: SwiGLU forward
// and backward and attention's exp(x - max), 8 lanes at a time, around a
// vector exp (the algorithm of
// exp32 in cpu_exp.go with the argument clamped to [-87.3, 88.7]).

#include "textflag.h"

DATA vexpc<>+0(SB)/4, $0x3fb8aa3b
DATA vexpc<>+4(SB)/4, $0x3fb8aa3b
DATA vexpc<>+8(SB)/4, $0x3fb8aa3b
DATA vexpc<>+12(SB)/4, $0x3fb8aa3b
DATA vexpc<>+16(SB)/4, $0x3fb8aa3b
DATA vexpc<>+20(SB)/4, $0x3fb8aa3b
DATA vexpc<>+24(SB)/4, $0x3fb8aa3b
DATA vexpc<>+28(SB)/4, $0x3fb8aa3b
DATA vexpc<>+32(SB)/4, $0x4b400000
DATA vexpc<>+36(SB)/4, $0x4b400000
DATA vexpc<>+40(SB)/4, $0x4b400000
DATA vexpc<>+44(SB)/4, $0x4b400000
DATA vexpc<>+48(SB)/4, $0x4b400000
DATA vexpc<>+52(SB)/4, $0x4b400000
DATA vexpc<>+56(SB)/4, $0x4b400000
DATA vexpc<>+60(SB)/4, $0x4b400000
DATA vexpc<>+64(SB)/4, $0x3f318000
DATA vexpc<>+68(SB)/4, $0x3f318000
DATA vexpc<>+72(SB)/4, $0x3f318000
DATA vexpc<>+76(SB)/4, $0x3f318000
DATA vexpc<>+80(SB)/4, $0x3f318000
DATA vexpc<>+84(SB)/4, $0x3f318000
DATA vexpc<>+88(SB)/4, $0x3f318000
DATA vexpc<>+92(SB)/4, $0x3f318000
DATA vexpc<>+96(SB)/4, $0xb95e8083
DATA vexpc<>+100(SB)/4, $0xb95e8083
DATA vexpc<>+104(SB)/4, $0xb95e8083
DATA vexpc<>+108(SB)/4, $0xb95e8083
DATA vexpc<>+112(SB)/4, $0xb95e8083
DATA vexpc<>+116(SB)/4, $0xb95e8083
DATA vexpc<>+120(SB)/4, $0xb95e8083
DATA vexpc<>+124(SB)/4, $0xb95e8083
DATA vexpc<>+128(SB)/4, $0x39506967
DATA vexpc<>+132(SB)/4, $0x39506967
DATA vexpc<>+136(SB)/4, $0x39506967
DATA vexpc<>+140(SB)/4, $0x39506967
DATA vexpc<>+144(SB)/4, $0x39506967
DATA vexpc<>+148(SB)/4, $0x39506967
DATA vexpc<>+152(SB)/4, $0x39506967
DATA vexpc<>+156(SB)/4, $0x39506967
DATA vexpc<>+160(SB)/4, $0x3ab743ce
DATA vexpc<>+164(SB)/4, $0x3ab743ce
DATA vexpc<>+168(SB)/4, $0x3ab743ce
DATA vexpc<>+172(SB)/4, $0x3ab743ce
DATA vexpc<>+176(SB)/4, $0x3ab743ce
DATA vexpc<>+180(SB)/4, $0x3ab743ce
DATA vexpc<>+184(SB)/4, $0x3ab743ce
DATA vexpc<>+188(SB)/4, $0x3ab743ce
DATA vexpc<>+192(SB)/4, $0x3c088908
DATA vexpc<>+196(SB)/4, $0x3c088908
DATA vexpc<>+200(SB)/4, $0x3c088908
DATA vexpc<>+204(SB)/4, $0x3c088908
DATA vexpc<>+208(SB)/4, $0x3c088908
DATA vexpc<>+212(SB)/4, $0x3c088908
DATA vexpc<>+216(SB)/4, $0x3c088908
DATA vexpc<>+220(SB)/4, $0x3c088908
DATA vexpc<>+224(SB)/4, $0x3d2aa9c1
DATA vexpc<>+228(SB)/4, $0x3d2aa9c1
DATA vexpc<>+232(SB)/4, $0x3d2aa9c1
DATA vexpc<>+236(SB)/4, $0x3d2aa9c1
DATA vexpc<>+240(SB)/4, $0x3d2aa9c1
DATA vexpc<>+244(SB)/4, $0x3d2aa9c1
DATA vexpc<>+248(SB)/4, $0x3d2aa9c1
DATA vexpc<>+252(SB)/4, $0x3d2aa9c1
DATA vexpc<>+256(SB)/4, $0x3e2aaaaa
DATA vexpc<>+260(SB)/4, $0x3e2aaaaa
DATA vexpc<>+264(SB)/4, $0x3e2aaaaa
DATA vexpc<>+268(SB)/4, $0x3e2aaaaa
DATA vexpc<>+272(SB)/4, $0x3e2aaaaa
DATA vexpc<>+276(SB)/4, $0x3e2aaaaa
DATA vexpc<>+280(SB)/4, $0x3e2aaaaa
DATA vexpc<>+284(SB)/4, $0x3e2aaaaa
DATA vexpc<>+288(SB)/4, $0x3f000000
DATA vexpc<>+292(SB)/4, $0x3f000000
DATA vexpc<>+296(SB)/4, $0x3f000000
DATA vexpc<>+300(SB)/4, $0x3f000000
DATA vexpc<>+304(SB)/4, $0x3f000000
DATA vexpc<>+308(SB)/4, $0x3f000000
DATA vexpc<>+312(SB)/4, $0x3f000000
DATA vexpc<>+316(SB)/4, $0x3f000000
DATA vexpc<>+320(SB)/4, $0x3f800000
DATA vexpc<>+324(SB)/4, $0x3f800000
DATA vexpc<>+328(SB)/4, $0x3f800000
DATA vexpc<>+332(SB)/4, $0x3f800000
DATA vexpc<>+336(SB)/4, $0x3f800000
DATA vexpc<>+340(SB)/4, $0x3f800000
DATA vexpc<>+344(SB)/4, $0x3f800000
DATA vexpc<>+348(SB)/4, $0x3f800000
DATA vexpc<>+352(SB)/4, $0xc2ae999a
DATA vexpc<>+356(SB)/4, $0xc2ae999a
DATA vexpc<>+360(SB)/4, $0xc2ae999a
DATA vexpc<>+364(SB)/4, $0xc2ae999a
DATA vexpc<>+368(SB)/4, $0xc2ae999a
DATA vexpc<>+372(SB)/4, $0xc2ae999a
DATA vexpc<>+376(SB)/4, $0xc2ae999a
DATA vexpc<>+380(SB)/4, $0xc2ae999a
DATA vexpc<>+384(SB)/4, $0x42b16666
DATA vexpc<>+388(SB)/4, $0x42b16666
DATA vexpc<>+392(SB)/4, $0x42b16666
DATA vexpc<>+396(SB)/4, $0x42b16666
DATA vexpc<>+400(SB)/4, $0x42b16666
DATA vexpc<>+404(SB)/4, $0x42b16666
DATA vexpc<>+408(SB)/4, $0x42b16666
DATA vexpc<>+412(SB)/4, $0x42b16666
GLOBL vexpc<>(SB), RODATA|NOPTR, $416

// func swigluAVX2(out, gate, up *float32, n int)
// out = g sigmoid(g) u for n a multiple of 8.
TEXT ·swigluAVX2(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ fdone
	VXORPS Y15, Y15, Y15
floop:
	VMOVUPS (SI), Y0
	VSUBPS Y0, Y15, Y1
	VMINPS vexpc<>+384(SB), Y1, Y1
	VMAXPS vexpc<>+352(SB), Y1, Y1
	VMOVUPS vexpc<>+32(SB), Y2
	VFMADD231PS vexpc<>+0(SB), Y1, Y2
	VSUBPS vexpc<>+32(SB), Y2, Y3
	VFNMADD231PS vexpc<>+64(SB), Y3, Y1
	VFNMADD231PS vexpc<>+96(SB), Y3, Y1
	VMOVUPS vexpc<>+128(SB), Y3
	VFMADD213PS vexpc<>+160(SB), Y1, Y3
	VFMADD213PS vexpc<>+192(SB), Y1, Y3
	VFMADD213PS vexpc<>+224(SB), Y1, Y3
	VFMADD213PS vexpc<>+256(SB), Y1, Y3
	VFMADD213PS vexpc<>+288(SB), Y1, Y3
	VMULPS Y1, Y1, Y4
	VFMADD213PS Y1, Y4, Y3
	VADDPS vexpc<>+320(SB), Y3, Y3
	VPSLLD $23, Y2, Y2
	VPADDD Y2, Y3, Y1
	VADDPS vexpc<>+320(SB), Y1, Y1
	VMOVUPS vexpc<>+320(SB), Y2
	VDIVPS Y1, Y2, Y2
	VMULPS Y2, Y0, Y2
	VMULPS (DX), Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ floop
fdone:
	VZEROUPPER
	RET

// func swigluBackwardAVX2(dg, du, dout, gate, up *float32, n int)
// s = sigmoid(g); du = dout g s; dg = dout u s (1 + g (1 - s)); n a
// multiple of 8. Each group of 8 is read before it is written, so dg and
// du may alias g and u.
TEXT ·swigluBackwardAVX2(SB), NOSPLIT, $0-48
	MOVQ dg+0(FP), R8
	MOVQ du+8(FP), R9
	MOVQ dout+16(FP), R10
	MOVQ gate+24(FP), SI
	MOVQ up+32(FP), DX
	MOVQ n+40(FP), CX
	SHRQ $3, CX
	JZ bdone
	VXORPS Y15, Y15, Y15
bloop:
	VMOVUPS (SI), Y0
	VMOVUPS (R10), Y6
	VMOVUPS (DX), Y10
	VSUBPS Y0, Y15, Y1
	VMINPS vexpc<>+384(SB), Y1, Y1
	VMAXPS vexpc<>+352(SB), Y1, Y1
	VMOVUPS vexpc<>+32(SB), Y2
	VFMADD231PS vexpc<>+0(SB), Y1, Y2
	VSUBPS vexpc<>+32(SB), Y2, Y3
	VFNMADD231PS vexpc<>+64(SB), Y3, Y1
	VFNMADD231PS vexpc<>+96(SB), Y3, Y1
	VMOVUPS vexpc<>+128(SB), Y3
	VFMADD213PS vexpc<>+160(SB), Y1, Y3
	VFMADD213PS vexpc<>+192(SB), Y1, Y3
	VFMADD213PS vexpc<>+224(SB), Y1, Y3
	VFMADD213PS vexpc<>+256(SB), Y1, Y3
	VFMADD213PS vexpc<>+288(SB), Y1, Y3
	VMULPS Y1, Y1, Y4
	VFMADD213PS Y1, Y4, Y3
	VADDPS vexpc<>+320(SB), Y3, Y3
	VPSLLD $23, Y2, Y2
	VPADDD Y2, Y3, Y1
	VADDPS vexpc<>+320(SB), Y1, Y1
	VMOVUPS vexpc<>+320(SB), Y5
	VDIVPS Y1, Y5, Y5
	VMULPS Y0, Y6, Y7
	VMULPS Y5, Y7, Y7
	VMOVUPS vexpc<>+320(SB), Y8
	VSUBPS Y5, Y8, Y8
	VFMADD213PS vexpc<>+320(SB), Y0, Y8
	VMULPS Y10, Y6, Y9
	VMULPS Y5, Y9, Y9
	VMULPS Y8, Y9, Y9
	VMOVUPS Y7, (R9)
	VMOVUPS Y9, (R8)
	ADDQ $32, SI
	ADDQ $32, R10
	ADDQ $32, DX
	ADDQ $32, R8
	ADDQ $32, R9
	DECQ CX
	JNZ bloop
bdone:
	VZEROUPPER
	RET

// func expSubAVX2(x *float32, n int, sub float32)
// x[i] = exp(x[i] - sub) in place, n a multiple of 8.
TEXT ·expSubAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	SHRQ $3, CX
	JZ edone
	VBROADCASTSS sub+16(FP), Y5
eloop:
	VMOVUPS (SI), Y0
	VSUBPS Y5, Y0, Y0
	VMINPS vexpc<>+384(SB), Y0, Y0
	VMAXPS vexpc<>+352(SB), Y0, Y0
	VMOVUPS vexpc<>+32(SB), Y1
	VFMADD231PS vexpc<>+0(SB), Y0, Y1
	VSUBPS vexpc<>+32(SB), Y1, Y2
	VFNMADD231PS vexpc<>+64(SB), Y2, Y0
	VFNMADD231PS vexpc<>+96(SB), Y2, Y0
	VMOVUPS vexpc<>+128(SB), Y2
	VFMADD213PS vexpc<>+160(SB), Y0, Y2
	VFMADD213PS vexpc<>+192(SB), Y0, Y2
	VFMADD213PS vexpc<>+224(SB), Y0, Y2
	VFMADD213PS vexpc<>+256(SB), Y0, Y2
	VFMADD213PS vexpc<>+288(SB), Y0, Y2
	VMULPS Y0, Y0, Y3
	VFMADD213PS Y0, Y3, Y2
	VADDPS vexpc<>+320(SB), Y2, Y2
	VPSLLD $23, Y1, Y1
	VPADDD Y1, Y2, Y0
	VMOVUPS Y0, (SI)
	ADDQ $32, SI
	DECQ CX
	JNZ eloop
edone:
	VZEROUPPER
	RET
