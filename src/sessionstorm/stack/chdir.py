"""``python -m sessionstorm.stack.chdir DIR COMMAND...``: run COMMAND in DIR (a profile's
``target.cwd``), the same way under every backend."""
import os
import sys

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python -m sessionstorm.stack.chdir DIR COMMAND...")
    os.chdir(sys.argv[1])
    os.execvp(sys.argv[2], sys.argv[2:])
