// local placeholder so SwiftPM resolves the target; not committed
