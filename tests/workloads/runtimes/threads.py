# threads.py OUT DIR -- Python 3 threads across a checkpoint (tests/Crisp.Tests/Runtimes).
# A timer thread numbers ticks into a queue, a consumer thread writes them to OUT ("N tick"), one thread
# is blocked on a lock that the main thread releases once DIR/release exists (it then writes "released").
import os, queue, sys, threading, time

out = open(sys.argv[1], "a", buffering=1)
release = os.path.join(sys.argv[2], "release")
ticks = queue.Queue()
lock = threading.Lock()
lock.acquire()

def timer():
    n = 0
    while True:
        n += 1
        ticks.put(n)
        time.sleep(0.02)

def consumer():
    while True:
        out.write(f"{ticks.get()} tick\n")

def blocked():
    with lock:
        out.write("released\n")

for f in (timer, consumer, blocked):
    threading.Thread(target=f, name=f.__name__, daemon=True).start()
while not os.path.exists(release):
    time.sleep(0.05)
lock.release()
while True:
    time.sleep(1)
