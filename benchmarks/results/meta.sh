SETTINGS=short
BACKEND=both
started=2026-12-02\ 00:33\ UTC
load_before=0.43\ 2.23\ 2.93
load_after=1.88\ 2.16\ 2.82
commit=7b16918
ECHO_DESC=-d\ 1\ -r\ 2
IDLE_DESC=-n\ 2000\ -m\ both
REDIS_DESC=REPS=1\ N=20000\ NP=200000
