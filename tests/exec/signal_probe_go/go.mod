module signalprobe

go 1.19
